"""Our own server side of RFC 6455 (web/connection.py, web/takeover.py), spoken to over raw
sockets so that every byte on the wire is ours: fragments, the first frame in the upgrade
packet, control frames, the close handshake, the hub-wide heartbeat, and no leaked entries."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
import uuid
import zlib
from typing import Any, Awaitable, Callable

import aiohttp
import msgpack

from liveroom.web.takeover import negotiate_deflate
from tests.test_wsframes import frame
from tests.support import AppHub, Client, HubProcess, eventually, t, token
from tests.test_slow_viewer import metric


def room() -> str:
    return "wsp" + uuid.uuid4().hex[:8]


def client_frame(payload: bytes, opcode: int = 2, fin: bool = True, rsv1: bool = False, masked: bool = True) -> bytes:
    """One client frame, masked with a random key as RFC 6455 requires."""
    return frame(payload, opcode, fin, 0x40 if rsv1 else 0, masked, key=os.urandom(4))


class RawClient:
    """A WebSocket client on a plain blocking socket (run in a thread by the tests)."""

    def __init__(self, port: int, room_: str, tok: str, extensions: str = "", first: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=t(5))
        key = base64.b64encode(os.urandom(16)).decode()
        ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        request = (
            f"GET /ws?room={room_}&token={tok} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        ).encode()
        self.sock.sendall(request + first)  # `first`: frames in the same packet as the request
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        assert self.head.startswith("HTTP/1.1 101 "), self.head

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (inflated when compressed)."""
        b0, b1 = self._need(2)
        assert not b1 & 0x80, "server frames are not masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8))[0]
        payload = self._need(n)
        if b0 & 0x40:
            payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        return b0 & 0x0F, payload

    def recv_msg(self) -> dict[str, Any]:
        """The next data frame as a map (control frames are returned as such)."""
        op, payload = self.recv_frame()
        if op in (1, 2):
            return msgpack.unpackb(payload)  # type: ignore[no-any-return]
        return {"control": op, "payload": payload}

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def at_eof(self) -> bool:
        """True once the server has closed the TCP connection."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def test_fragmented_frames_are_reassembled(shared_hub: HubProcess) -> None:
    """A comment split over three fragments, with a ping between them, is one op: the ping
    is answered at once and the comment replied to."""
    r_ = room()

    def run() -> list[dict[str, Any]]:
        c = RawClient(shared_hub.port, r_, token("frag"))
        try:
            assert c.recv_msg()["t"] == "welcome"
            body = msgpack.packb({"t": "comment", "id": 7, "text": "in three parts"})
            c.send(client_frame(body[:5], opcode=2, fin=False))
            c.send(client_frame(b"are you there", opcode=9))
            c.send(client_frame(body[5:12], opcode=0, fin=False))
            c.send(client_frame(body[12:], opcode=0, fin=True))
            got = []
            while not any(m.get("t") == "reply" for m in got):
                got.append(c.recv_msg())
            return got
        finally:
            c.close()

    got = await in_thread(run)
    assert {"control": 10, "payload": b"are you there"} in got
    reply = [m for m in got if m.get("t") == "reply"][0]
    assert reply["id"] == 7 and reply["ok"], reply


async def test_first_frame_in_the_upgrade_packet_is_not_lost(shared_hub: HubProcess) -> None:
    """Frames sent in the same packet as the upgrade request (already read by aiohttp when
    the socket changes hands) are answered, after the welcome and in order."""
    r_ = room()
    first = b"".join(
        client_frame(msgpack.packb({"t": "comment", "id": i, "text": f"early {i}"})) for i in (1, 2, 3)
    ) + client_frame(msgpack.packb({"t": "ping", "id": 4}))

    def run() -> list[dict[str, Any]]:
        c = RawClient(shared_hub.port, r_, token("early"), first=first)
        try:
            got = [c.recv_msg()]
            while len([m for m in got if m.get("t") in ("reply", "pong")]) < 4:
                got.append(c.recv_msg())
            return got
        finally:
            c.close()

    got = await in_thread(run)
    assert got[0]["t"] == "welcome"
    answers = [m for m in got if m.get("t") in ("reply", "pong")]
    assert [m["id"] for m in answers] == [1, 2, 3, 4]
    assert all(m["ok"] for m in answers[:3]), answers
    assert answers[3]["t"] == "pong"


async def test_client_close_is_echoed_and_nothing_leaks(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    """The client's close frame is answered with the same code, the server closes TCP, and
    the hub forgets the socket (connections gauge back to zero: a hub of its own)."""
    hub = await app_hub()
    r_ = room()
    before = await metric(hub.base, "liveroom_connections")
    assert before == 0

    def run() -> tuple[int, bytes, bool]:
        c = RawClient(hub.port, r_, token("closer"))
        try:
            assert c.recv_msg()["t"] == "welcome"
            c.send(client_frame(struct.pack("!H", 4001) + b"done", opcode=8))
            while True:
                op, payload = c.recv_frame()
                if op == 8:
                    break
            return op, payload, c.at_eof()
        finally:
            c.close()

    op, payload, eof = await in_thread(run)
    assert struct.unpack("!H", payload[:2])[0] == 4001
    assert eof

    async def forgotten() -> bool:
        return await metric(hub.base, "liveroom_connections") == before

    await eventually(forgotten, what="the closed socket no longer counted")


async def test_protocol_violations_close_the_socket(shared_hub: HubProcess) -> None:
    """An unmasked client frame: close 1002. A message over max_frame_bytes in fragments
    (none of them too large alone): `bye too_large`, close 1009."""
    r_ = room()

    def unmasked() -> int:
        c = RawClient(shared_hub.port, r_, token("u1"))
        try:
            assert c.recv_msg()["t"] == "welcome"
            c.send(client_frame(msgpack.packb({"t": "ping"}), masked=False))
            while True:
                op, payload = c.recv_frame()
                if op == 8:
                    return int(struct.unpack("!H", payload[:2])[0])
        finally:
            c.close()

    def too_large() -> tuple[dict[str, Any], int]:
        c = RawClient(shared_hub.port, r_, token("u2"))
        try:
            assert c.recv_msg()["t"] == "welcome"
            for _ in range(3):
                c.send(client_frame(b"x" * 4000, opcode=2 if _ == 0 else 0, fin=False))
            bye: dict[str, Any] = {}
            while True:
                op, payload = c.recv_frame()
                if op == 2:
                    bye = msgpack.unpackb(payload)
                if op == 8:
                    c.send(client_frame(payload, opcode=8))
                    return bye, int(struct.unpack("!H", payload[:2])[0])
        finally:
            c.close()

    assert await in_thread(unmasked) == 1002
    bye, code = await in_thread(too_large)
    assert bye == {"t": "bye", "reason": "too_large", "reconnect": False}
    assert code == 1009


async def test_deflate_negotiation_and_compressed_client_frames(shared_hub: HubProcess) -> None:
    """permessage-deflate is answered without context takeover either way (and with the
    client's server_max_window_bits); a compressed client frame is inflated."""
    r_ = room()

    def run() -> tuple[str, dict[str, Any], dict[str, Any]]:
        c = RawClient(shared_hub.port, r_, token("z"), extensions="permessage-deflate; server_max_window_bits=10")
        try:
            welcome = c.recv_msg()
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = comp.compress(msgpack.packb({"t": "comment", "id": 1, "text": "squeezed"})) + comp.flush(zlib.Z_SYNC_FLUSH)
            c.send(client_frame(body[:-4], rsv1=True))
            while True:
                m = c.recv_msg()
                if m.get("t") == "reply":
                    return c.head, welcome, m
        finally:
            c.close()

    head, welcome, reply = await in_thread(run)
    ext = [line for line in head.split("\r\n") if line.lower().startswith("sec-websocket-extensions")][0]
    assert "server_no_context_takeover" in ext and "client_no_context_takeover" in ext
    assert "server_max_window_bits=10" in ext
    assert welcome["t"] == "welcome"
    assert reply["ok"], reply


async def test_invalid_close_frames_fail_the_connection(hub: HubProcess) -> None:
    """A close frame with a reserved code (1005), an unassigned one (2999), a one-byte
    payload or a reason that is not UTF-8 is not echoed: the server closes with 1002 or 1007,
    once, and closes TCP."""
    r_ = room()
    cases = [
        (struct.pack("!H", 1005), 1002),
        (struct.pack("!H", 2999), 1002),
        (b"\x03", 1002),
        (struct.pack("!H", 1000) + b"bad \xff", 1007),
    ]

    def run(payload: bytes) -> tuple[list[int], bool]:
        c = RawClient(hub.port, r_, token("badclose"))
        try:
            assert c.recv_msg()["t"] == "welcome"
            c.send(client_frame(payload, opcode=8))
            codes = []
            while True:
                try:
                    op, body = c.recv_frame()
                except (EOFError, ConnectionResetError):
                    return codes, True
                if op == 8:
                    codes.append(int(struct.unpack("!H", body[:2])[0]))
        finally:
            c.close()

    for payload, expect in cases:
        codes, eof = await in_thread(run, payload)
        assert codes == [expect] and eof, (payload, codes)


async def test_unsupported_version_gets_426(hub: HubProcess) -> None:
    """A handshake for a version other than 13 is answered 426 Upgrade Required naming 13
    (RFC 6455 4.4), and the socket is not taken over."""

    def run() -> str:
        sock = socket.create_connection(("127.0.0.1", hub.port), timeout=t(5))
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                (
                    f"GET /ws?room={room()}&token={token('v8')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 8\r\n\r\n"
                ).encode()
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                assert chunk, "closed without an answer"
                buf += chunk
            return buf.split(b"\r\n\r\n", 1)[0].decode()
        finally:
            sock.close()

    head = await in_thread(run)
    assert head.startswith("HTTP/1.1 426 "), head
    assert "sec-websocket-version: 13" in head.lower().split("\r\n"), head


def test_negotiate_deflate() -> None:
    assert negotiate_deflate("") == (0, "")
    assert negotiate_deflate("x-webkit-deflate-frame")[0] == 0
    wbits, ext = negotiate_deflate("permessage-deflate; client_max_window_bits")
    assert wbits == 15 and "server_max_window_bits" not in ext
    assert negotiate_deflate("permessage-deflate; server_max_window_bits=8")[0] == 0
    assert negotiate_deflate("permessage-deflate; server_max_window_bits=8, permessage-deflate")[0] == 15
    assert negotiate_deflate("permessage-deflate; bogus=1")[0] == 0


async def test_heartbeat_pings_and_closes_a_silent_client(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    """A client that never answers is pinged after ping_after_s and, after idle_timeout_s,
    sent `bye` `idle` and closed by the hub-wide sweep; one that answers pings (aiohttp's
    autoping) stays."""
    h = await app_hub(LIVEROOM_PING_AFTER_S="0.4", LIVEROOM_IDLE_TIMEOUT_S="1.5")
    r_ = room()
    alive = await Client.connect(h.base, r_, token("alive"))

    frames: list[tuple[int, bytes]] = []

    def silent() -> tuple[list[int], float]:
        c = RawClient(h.port, r_, token("silent"))
        start = time.monotonic()
        try:
            ops = []
            c.sock.settimeout(t(10))
            while True:
                try:
                    op, payload = c.recv_frame()
                except (EOFError, ConnectionResetError):
                    return ops, time.monotonic() - start
                ops.append(op)
                frames.append((op, payload))
        finally:
            c.close()

    try:
        ops, lasted = await in_thread(silent)
        assert 9 in ops  # pinged
        # the contract's `bye` before the close frame
        data = [msgpack.unpackb(p) for op, p in frames if op == 2]
        assert {"t": "bye", "reason": "idle", "reconnect": True} in data, data
        assert ops.index(8) > max(i for i, (op, _) in enumerate(frames) if op == 2)
        assert 1.2 < lasted < t(6), lasted
        # `alive` joined first, so it has been connected longer than idle_timeout_s by now;
        # a short wait covers one more sweep (every ping_after_s / 3) that must not cut it
        await asyncio.sleep(0.3)
        assert not alive.closed.is_set()
        assert (await alive.call("comment", text="still here"))["ok"]
    finally:
        await alive.close()


async def test_aiohttp_client_close_code_after_bye(shared_hub: HubProcess) -> None:
    """A server `bye` arrives before the close frame, whose code is the bye's (1009 here),
    also for a client that did not negotiate deflate."""
    c = await Client.connect(shared_hub.base, room(), token("big"), compress=0)
    try:
        await c.ws.send_bytes(msgpack.packb({"t": "comment", "text": "y" * 9000}))
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert c.last_frame("bye") == {"t": "bye", "reason": "too_large", "reconnect": False}
        assert c.ws.close_code == 1009
    finally:
        await c.close()


async def test_plain_http_get_on_ws_is_refused(shared_hub: HubProcess) -> None:
    """An admitted request without the upgrade headers is a 400, not a hang."""
    async with aiohttp.ClientSession() as s:
        async with s.get(shared_hub.base + "/ws", params={"room": room(), "token": token("p")}) as r:
            assert r.status == 400


async def test_a_burst_of_frames_is_answered_in_order(shared_hub: HubProcess) -> None:
    """200 frames in one write (more than the inbox holds: reading pauses and resumes), with
    ops that await Redis, pings answered without it, and garbage: every answer comes in the
    order of the frames."""
    r_ = room()
    frames = []
    expect: list[Any] = []
    for i in range(1, 201):
        if i % 20 == 0:
            frames.append(client_frame(b"\xc1"))  # undecodable, no id: an `error`
            expect.append("error")
        elif i % 3 == 0:
            frames.append(client_frame(msgpack.packb({"t": "ping", "id": i})))
            expect.append(("pong", i))
        else:
            frames.append(client_frame(msgpack.packb({"t": "like", "id": i, "n": 1})))
            expect.append(("reply", i))

    def run() -> list[Any]:
        c = RawClient(shared_hub.port, r_, token("burst"))
        try:
            assert c.recv_msg()["t"] == "welcome"
            c.send(b"".join(frames))
            got: list[Any] = []
            while len(got) < len(expect):
                m = c.recv_msg()
                if m.get("t") == "error":
                    got.append("error")
                elif m.get("t") in ("reply", "pong"):
                    assert m.get("ok", True), m
                    got.append((m["t"], m["id"]))
            return got
        finally:
            c.close()

    assert await in_thread(run) == expect


def test_unmask_matches_the_definition() -> None:
    """The big-integer XOR equals RFC 6455's byte-by-byte definition, at every length mod 4."""
    from liveroom.protocol.codec import unmask

    for n in list(range(0, 20)) + [125, 126, 4095, 8192]:
        data, key = os.urandom(n), os.urandom(4)
        assert unmask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))
