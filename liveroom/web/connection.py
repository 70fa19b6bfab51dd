"""One viewer's socket as the hub sees it: a bounded, never-blocking `send`.

Frames are written straight to the transport: server frames are unmasked, so the bytes
the hub built once per room and tick are complete frames for every socket, and an
uncompressed write needs no lock. The transport's write buffer is the outbox; its size
bounds what one connection may hold. Above `outbox_bytes` the connection is slow: frames
with only comments and latest-value counters are skipped for it (the next tick carries
fresh counters), essential frames still go; above four times that it gets `bye slow` and
may reconnect and resume from history. A slow phone costs the room nothing but a skip.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from liveroom.errors import BYE
from liveroom.metrics import Metrics
from liveroom.protocol.codec import Codec, frame

log = logging.getLogger(__name__)

SLOW_FACTOR = 4


class Connection:
    __slots__ = ("ws", "transport", "codec", "wire", "user_id", "outbox_bytes", "closed", "metrics", "ip", "__weakref__")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        codec: Codec,
        user_id: str,
        outbox_bytes: int,
        metrics: Metrics,
        ip: str,
        deflate_wbits: int = 0,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.codec = codec
        self.wire = (codec, deflate_wbits)
        self.user_id = user_id
        self.outbox_bytes = outbox_bytes
        self.closed = False
        self.metrics = metrics
        self.ip = ip

    def send(self, data: bytes, essential: bool) -> None:
        if self.closed:
            return
        t = self.transport
        if t.is_closing():
            self.closed = True
            return
        buffered = t.get_write_buffer_size()
        if buffered > self.outbox_bytes:
            if buffered > SLOW_FACTOR * self.outbox_bytes:
                self.kick("slow")
                return
            if not essential:
                self.metrics.slow_skips.inc()
                return
        t.write(data)

    def send_obj(self, obj: Any) -> None:
        """A one-off frame (reply, error, pong): always essential."""
        self.send(frame(obj, self.codec), True)

    def kick(self, reason: str) -> None:
        """End the connection with `bye` from outside the read loop (never re-entrant)."""
        if self.closed:
            return
        asyncio.get_running_loop().create_task(self.bye(reason))

    async def bye(self, reason: str) -> None:
        if self.closed:
            return
        close_code, reconnect = BYE.get(reason, (1011, True))
        self.metrics.byes.labels(reason).inc()
        self.closed = True  # first: nothing else is queued behind the bye
        if not self.transport.is_closing():
            # written past the outbox limit on purpose: the last frame this socket gets
            self.transport.write(frame({"t": "bye", "reason": reason, "reconnect": reconnect}, self.codec))
        try:
            await asyncio.wait_for(self.ws.close(code=close_code, message=reason.encode()), 2.0)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            # a slow peer may never read its close frame: do not hold its buffer hostage
            self.transport.abort()
