"""GET /ws: checks before the upgrade, then one read loop per connection.

Frame in -> size and rate checks -> decode (protocol/codec.py) -> parse (protocol/frames.py)
-> op (core/ops.py) -> one `reply` for a frame with an `id`. Outgoing room events do not
pass through here: the hub writes them to `Connection.send` (web/connection.py).
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections import Counter
from typing import Any

from aiohttp import WSMsgType, web

from liveroom.auth import Authenticator
from liveroom.config import Config
from liveroom.core.hub import Hub
from liveroom.core.ops import Ops
from liveroom.core.session import Session
from liveroom.core.rules import TokenBucket
from liveroom.errors import (
    BAD_FIELD,
    BAD_FRAME,
    BAD_ROOM,
    BAD_TOKEN,
    DRAINING,
    FORBIDDEN,
    INTERNAL,
    OVERLOADED,
    RATE_LIMITED,
    UNKNOWN_OP,
    Disconnect,
    Refused,
    ReplyError,
    Unavailable,
)
from liveroom.metrics import Metrics
from liveroom.protocol import frames as F
from liveroom.protocol.codec import Codec, decode
from liveroom.web.connection import Connection

log = logging.getLogger(__name__)

ROOM_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# frames that count against a connection's patience: garbage, not refusals of valid ops
STRIKE_CODES = frozenset({BAD_FRAME, UNKNOWN_OP, BAD_FIELD, RATE_LIMITED})
# aiohttp itself closes (1009, no `bye`) above this; between max_frame_bytes and it we
# answer `bye too_large` ourselves
HARD_FRAME_FACTOR = 8


class WsEndpoint:
    def __init__(self, cfg: Config, hub: Hub, ops: Ops, auth: Authenticator, metrics: Metrics) -> None:
        self.cfg = cfg
        self.hub = hub
        self.ops = ops
        self.auth = auth
        self.metrics = metrics
        self.draining = False
        self.connections: set[Connection] = set()
        self._per_ip: Counter[str] = Counter()

    def client_ip(self, request: web.Request) -> str:
        if self.cfg.server.trust_forwarded:
            fwd = request.headers.get("X-Forwarded-For")
            if fwd:
                return fwd.split(",")[0].strip()
        return request.remote or "?"

    def _admit(self, request: web.Request) -> tuple[Session, Codec, int | None, str | None]:
        """Everything checked before the upgrade; raises Refused."""
        if self.draining:
            raise Refused(DRAINING, "this hub is restarting; reconnect")
        if len(self.connections) >= self.cfg.limits.max_connections:
            raise Refused(OVERLOADED, "this hub is full; retry shortly")
        q = request.query
        room = q.get("room", "")
        if not ROOM_RE.match(room):
            raise Refused(BAD_ROOM, "room: 1-64 characters of A-Z a-z 0-9 _ . : -")
        token = q.get("token") or ""
        if not token:
            auth_header = request.headers.get("Authorization", "")
            if auth_header.startswith("Bearer "):
                token = auth_header[7:].strip()
        if token:
            identity = self.auth.verify(token)
        elif self.auth.anonymous_allowed:
            identity = self.auth.anonymous()
        else:
            raise Refused(BAD_TOKEN, "a token is required")
        if not identity.may_enter(room):
            raise Refused(FORBIDDEN, "this token is not valid for this room")
        try:
            codec = Codec(q.get("codec", "msgpack"))
        except ValueError:
            raise Refused(BAD_FIELD, "codec: msgpack or json") from None
        since: int | None = None
        epoch = q.get("epoch")
        if "since" in q:
            try:
                since = int(q["since"])
                if since < 0:
                    raise ValueError
            except ValueError:
                raise Refused(BAD_FIELD, "since: a non-negative integer") from None
        return Session(identity, room, identity.role_in(room)), codec, since, epoch

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            session, codec, since, epoch = self._admit(request)
        except Refused as exc:
            self.metrics.refused.labels(exc.code).inc()
            return web.json_response(exc.as_body(), status=exc.status)
        ip = self.client_ip(request)
        limit = self.cfg.limits.max_conn_per_ip
        if limit and self._per_ip[ip] >= limit:
            self.metrics.refused.labels(OVERLOADED).inc()
            full = Refused(OVERLOADED, "too many connections from this address")
            return web.json_response(full.as_body(), status=full.status)

        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        ws = web.WebSocketResponse(
            # deflate is negotiated when offered, but aiohttp never compresses for us: room
            # batches are compressed once per tick (codec.deflate_frame) and shared
            compress=self.cfg.limits.deflate,
            max_msg_size=self.cfg.limits.max_frame_bytes * HARD_FRAME_FACTOR,
            heartbeat=30.0,
            protocols=offered[:1],  # some clients fail the handshake unless one is picked
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        if self.cfg.limits.socket_sndbuf_bytes:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.cfg.limits.socket_sndbuf_bytes)
        wbits = int(ws.compress) if ws.compress else 0
        conn = Connection(
            ws, transport, codec, session.identity.id, self.cfg.limits.outbox_bytes, self.metrics, ip, wbits
        )
        self.connections.add(conn)
        self._per_ip[ip] += 1
        self.metrics.connections.inc()
        joined = False
        try:
            user = {"id": session.identity.id, "name": session.identity.name, "role": session.role}
            try:
                await self.hub.join(conn, session.room, user, since, epoch)
                joined = True
            except Unavailable as exc:
                conn.send_obj({"t": "error", "error": exc.as_dict()})
                await conn.bye("unavailable")
                return ws
            await self._read_loop(ws, conn, session)
        except Disconnect as exc:
            await conn.bye(exc.reason)
        finally:
            if joined:
                self.hub.leave(conn, session.room)
            conn.closed = True
            self.connections.discard(conn)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            self.metrics.connections.dec()
            if not ws.closed:
                try:
                    await ws.close()
                except Exception:  # the peer is gone; nothing left to tell it
                    pass
        return ws

    async def _read_loop(self, ws: web.WebSocketResponse, conn: Connection, session: Session) -> None:
        lim = self.cfg.limits
        frames = TokenBucket(lim.frame_rate, lim.frame_burst)
        strikes = TokenBucket(1.0, lim.max_strikes)  # patience: max_strikes, regrowing 1/s
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                data = msg.data
                if len(data) > lim.max_frame_bytes:
                    raise Disconnect("too_large")
                fid: int | None = None
                try:
                    m = decode(data, conn.codec, lim.max_frame_bytes)
                    fid = F.frame_id(m)
                    op = F.parse(m)
                    if not frames.take():
                        raise ReplyError(RATE_LIMITED, "too many frames")
                    self.metrics.frame_in(m["t"])
                    if isinstance(op, F.Ping):
                        pong: dict[str, Any] = {"t": "pong"}
                        if fid is not None:
                            pong["id"] = fid
                        conn.send_obj(pong)
                        continue
                    started = time.perf_counter()
                    result = await self.ops.handle(session, op)
                    self.metrics.op_time(m["t"], time.perf_counter() - started)
                    if fid is not None:
                        reply: dict[str, Any] = {"t": "reply", "id": fid, "ok": True}
                        if result:
                            reply.update(result)
                        conn.send_obj(reply)
                except ReplyError as exc:
                    self._refuse(conn, fid, exc)
                    if exc.code in STRIKE_CODES and not strikes.take():
                        raise Disconnect("abuse") from None
                except Exception:
                    log.exception("op failed")
                    self._refuse(conn, fid, ReplyError(INTERNAL, "internal error"))
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return

    def _refuse(self, conn: Connection, fid: int | None, exc: ReplyError) -> None:
        self.metrics.errors.labels(exc.code).inc()
        if fid is not None:
            conn.send_obj({"t": "reply", "id": fid, "ok": False, "error": exc.as_dict()})
        else:
            conn.send_obj({"t": "error", "error": exc.as_dict()})

    async def drain(self) -> None:
        """Rolling restart: refuse new sockets, tell every viewer to reconnect elsewhere."""
        self.draining = True
        for conn in list(self.connections):
            conn.kick("draining")
