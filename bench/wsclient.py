"""A small WebSocket client for load generation: one asyncio.Protocol per socket, frames
parsed in `data_received`, no task and no stream reader per socket.

Why: with aiohttp's client (a reader task, a queue hand-off and a message object per frame
per socket) two load processes needed a whole core for 5,000 viewers, so 10,000 viewers
could not be driven on a 2-core machine that also runs the hub. Here a frame costs a
header parse and a callback. Just enough of RFC 6455 for the benchmark: the HTTP upgrade,
text and binary frames (unfragmented, as both servers send them), permessage-deflate
without context takeover, ping -> pong, close. Frames we send are masked.
"""

from __future__ import annotations

import asyncio
import base64
import os
import zlib
from typing import Callable
from urllib.parse import urlencode

from liveroom.protocol.codec import unmask

TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10

OnMessage = Callable[["WSClient", int, bytes], None]  # (socket, opcode, payload)


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN, masked with a random key, as RFC 6455 requires of clients)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + unmask(payload, key)  # masking and unmasking are the same XOR


class WSClient(asyncio.Protocol):
    __slots__ = (
        "path", "host", "deflate", "on_message", "on_close", "transport", "buf", "upgraded", "opened", "closed",
        "expect", "claimed", "caught",
    )  # fmt: skip

    def __init__(self, path: str, host: str, on_message: OnMessage, on_close: Callable[["WSClient"], None], deflate: bool) -> None:
        self.path = path
        self.host = host
        self.deflate = deflate
        self.on_message = on_message
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        # the next data frame goes here instead of to on_message (handshake replies such as
        # a welcome, which may arrive in the same packet as the 101)
        self.expect: asyncio.Future[bytes] | None = asyncio.get_running_loop().create_future()
        self.claimed = False  # whether a caller holds `expect` (from arm())
        self.caught: asyncio.Future[bytes] | None = None  # fired before anyone claimed it

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if self.deflate else ""
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head, buf = buf[:end], buf[end + 4 :]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                return
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, hl = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < hl + ln:
                break
            payload = buf[pos + hl : pos + hl + ln]
            pos += hl + ln
            op = b0 & 0x0F
            if op == BINARY or op == TEXT:
                if b0 & 0x40:  # RSV1: compressed (the server never keeps context)
                    payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
                expect = self.expect
                if expect is not None:
                    self.expect = None
                    if not expect.done():
                        expect.set_result(payload)
                    if not self.claimed:
                        self.caught = expect
                else:
                    self.on_message(self, op, payload)
            elif op == PING:
                self.send(PONG, payload)
            elif op == CLOSE:
                self.close()
                return
        self.buf = buf[pos:] if pos < n else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("closed during the handshake"))
        if not self.closed:
            self.closed = True
            self.on_close(self)

    # -- ours ---------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self.expect is not None and not self.expect.done():
            self.expect.set_exception(exc if isinstance(exc, Exception) else ConnectionError("closed"))
            self.expect.exception()  # retrieved: nobody may be waiting for it
        if not self.opened.done():
            self.opened.set_exception(exc)
            if self.transport is not None:
                self.transport.close()

    def arm(self) -> asyncio.Future[bytes]:
        """The next data frame, caught before on_message sees it: arm before it can arrive
        (before sending the request it answers). The first frame after the upgrade is
        caught without arming, even when it came (and more frames after it) before the
        caller asked."""
        if self.caught is not None:
            got, self.caught = self.caught, None
            return got
        if self.expect is None:
            self.expect = asyncio.get_running_loop().create_future()
        self.claimed = True
        return self.expect

    async def next_frame(self, timeout: float = 30) -> bytes:
        return await asyncio.wait_for(self.arm(), timeout)

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked_frame(opcode, payload))

    def close(self) -> None:
        """Close politely (a close frame), then drop the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.send(CLOSE, (1000).to_bytes(2, "big"))
            self.transport.close()


async def connect(
    host: str, port: int, path: str, params: dict[str, str], on_message: OnMessage,
    on_close: Callable[[WSClient], None], *, deflate: bool = False, timeout: float = 30,
) -> WSClient:  # fmt: skip
    loop = asyncio.get_running_loop()
    full = f"{path}?{urlencode(params)}" if params else path
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: WSClient(full, f"{host}:{port}", on_message, on_close, deflate), host, port),
        timeout,
    )
    await asyncio.wait_for(proto.opened, timeout)
    return proto
