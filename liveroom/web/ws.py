"""GET /ws: checks before the upgrade, then the socket is ours (web/takeover.py).

Frame in (web/connection.py) -> size and rate checks -> decode (protocol/codec.py) -> parse
(protocol/frames.py) -> op (core/ops.py), run in order per connection -> one `reply` for a
frame with an `id`. Outgoing room events do not pass through here: the hub writes them to
`Connection.send`. One hub-wide heartbeat sweep replaces aiohttp's per-socket ping timers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import resource
import socket
import time
from collections import Counter
from typing import Any

from aiohttp import web

from liveroom.auth import Authenticator
from liveroom.config import Config
from liveroom.core.hub import Hub
from liveroom.core.rules import take_token
from liveroom.core.ops import Ops
from liveroom.core.session import Session
from liveroom.errors import (
    BAD_FIELD,
    BAD_FRAME,
    BAD_ROOM,
    BAD_TOKEN,
    BANNED,
    DRAINING,
    FORBIDDEN,
    INTERNAL,
    NO_SUCH_ROOM,
    OVERLOADED,
    RATE_LIMITED,
    UNAVAILABLE,
    UNKNOWN_OP,
    Refused,
    ReplyError,
    Unavailable,
)
from liveroom.metrics import Metrics
from liveroom.protocol import frames as F
from liveroom.protocol.codec import Codec, decode, frame
from liveroom.web.connection import LOST, Connection
from liveroom.web.outbox import HubOutbox
from liveroom.web.takeover import Detached, HandshakeError, detach, handshake

log = logging.getLogger(__name__)

FD_RESERVE = 256  # descriptors kept for Redis, pending HTTP sockets, logs and files


def fd_budget() -> int:
    """Viewer sockets this process can hold: its open-files limit less a reserve (at least a
    tenth), so a full hub still answers health checks and reaches Redis."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(soft - max(FD_RESERVE, soft // 10), 16)

ROOM_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # \Z: "$" would let a trailing newline in
# frames that count against a connection's patience: garbage, not refusals of valid ops
STRIKE_CODES = frozenset({BAD_FRAME, UNKNOWN_OP, BAD_FIELD, RATE_LIMITED})


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
        self._anon_per_ip: Counter[str] = Counter()
        self._anon_rooms: dict[str, Counter[str]] = {}  # ip -> room -> anonymous sockets
        self._resumes: dict[str, tuple[float, float]] = {}  # ip -> (tokens, stamp): resume joins
        self._likes: dict[Connection, tuple[float, float]] = {}  # only sockets that tap have one
        self.max_connections = min(cfg.limits.max_connections, fd_budget())
        # bytes waiting for all the sockets: past limits.hub_outbox_bytes, the most behind go
        self.outbox = HubOutbox(cfg.limits.hub_outbox_bytes, lambda conn: conn.bye("slow"))
        self._sweeper: asyncio.Task[None] | None = None

    def retry_ms(self) -> int:
        """When a client refused for want of Redis should try again: limits.retry_ms to twice
        that, at random, so that a room's viewers do not all come back in the same instant."""
        base = self.cfg.limits.retry_ms
        return base + random.randrange(base + 1)

    def client_ip(self, request: web.Request) -> str:
        """Behind our proxies (trust_forwarded), the address the outermost of them saw:
        `forwarded_hops` entries from the right of X-Forwarded-For. Entries further left
        are the client's to write, so never the leftmost."""
        if self.cfg.server.trust_forwarded:
            fwd = request.headers.get("X-Forwarded-For")
            if fwd:
                parts = [p.strip() for p in fwd.split(",") if p.strip()]
                if parts:
                    return parts[-min(self.cfg.server.forwarded_hops, len(parts))]
        return request.remote or "?"

    def _too_many_rooms(self, ip: str, room: str) -> bool:
        """An address's anonymous viewers hold sockets in at most max_anon_rooms_per_ip rooms:
        a crawler of rooms costs a subscription and presence per room it holds."""
        cap = self.cfg.limits.max_anon_rooms_per_ip
        rooms = self._anon_rooms.get(ip)
        return bool(cap and rooms and room not in rooms and len(rooms) >= cap)

    def _resume_allowed(self, ip: str) -> bool:
        """A resume from far back costs the hub a history read and a big frame: a few per
        second per address (a reconnect storm of one phone is a handful)."""
        rate = self.cfg.limits.resume_rate
        if rate <= 0:
            return True
        now = time.monotonic()
        if len(self._resumes) > 10_000:  # bounded: forget addresses idle for a minute
            self._resumes = {k: v for k, v in self._resumes.items() if now - v[1] < 60}
        tokens, stamp = self._resumes.get(ip, (5 * rate, now))
        ok, tokens = take_token(tokens, now - stamp, rate, 5 * rate)
        self._resumes[ip] = (tokens, now)
        return ok

    def _likes_allowed(self, conn: Connection, n: int) -> int:
        """How many of `n` taps this socket may still add (limits.like_rate per second)."""
        rate = self.cfg.limits.like_rate
        if rate <= 0:
            return n
        now = time.monotonic()
        burst = 3 * rate  # a phone sends its taps gathered, in bursts
        tokens, stamp = self._likes.get(conn, (burst, now))
        tokens = min(burst, tokens + (now - stamp) * rate)
        took = min(n, int(tokens))
        self._likes[conn] = (tokens - took, now)
        return took

    def _admit(self, request: web.Request) -> tuple[Session, Codec, int | None, str | None]:
        """Everything checked before the upgrade; raises Refused."""
        if self.draining:
            raise Refused(DRAINING, "this hub is restarting; reconnect")
        if len(self.connections) >= self.max_connections:
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
        if epoch is not None:
            try:
                F.check_str(epoch, "epoch", 64)
            except ReplyError as exc:
                raise Refused(BAD_FIELD, exc.message) from None
        if "since" in q:
            try:
                since = int(q["since"])
                if since < 0:
                    raise ValueError
            except ValueError:
                raise Refused(BAD_FIELD, "since: a non-negative integer") from None
        return Session(identity, room, identity.role_in(room)), codec, since, epoch

    async def _room_entry(self, session: Session) -> None:
        """Rooms exist on purpose (PUT /api/rooms/{room}): joining another is refused before
        the upgrade with nothing written, so invented room ids cost Redis no keys (with
        room.implicit_rooms the first join creates the room); and 403 `banned` while a ban
        lasts (anonymous viewers are not banned by id). One read: room_admit.lua."""
        user = "" if session.identity.anonymous else session.identity.id
        try:
            exists, banned = await self.hub.broker.admit(session.room, user)
        except Unavailable:
            raise Refused(UNAVAILABLE, "the room's data store did not answer; retry shortly", self.retry_ms()) from None
        if not exists and not self.cfg.room.implicit_rooms:
            raise Refused(NO_SUCH_ROOM, "no such room")
        if banned is not None and (banned < 0 or banned > time.time() * 1000):
            raise Refused(BANNED, "you are banned from this room" + ("" if banned < 0 else f" until {banned}"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            session, codec, since, epoch = self._admit(request)
        except Refused as exc:
            self.metrics.refused.labels(exc.code).inc()
            return web.json_response(exc.as_body(), status=exc.status)
        try:  # before the per-address counts: from those to the join nothing awaits
            await self._room_entry(session)
        except Refused as exc:
            self.metrics.refused.labels(exc.code).inc()
            return web.json_response(exc.as_body(), status=exc.status, headers=exc.headers())
        ip = self.client_ip(request)
        limit = self.cfg.limits.max_conn_per_ip
        anon_limit = self.cfg.limits.max_anon_per_ip
        anonymous = session.identity.anonymous
        refused = None
        if limit and self._per_ip[ip] >= limit:
            refused = Refused(OVERLOADED, "too many connections from this address")
        elif anonymous and anon_limit and self._anon_per_ip[ip] >= anon_limit:
            refused = Refused(OVERLOADED, "too many anonymous connections from this address; sign in")
        elif anonymous and self._too_many_rooms(ip, session.room):
            refused = Refused(OVERLOADED, "anonymous viewers of this address are in too many rooms; sign in")
        elif since is not None and not self._resume_allowed(ip):
            refused = Refused(RATE_LIMITED, "reconnecting too often from this address; retry shortly")
        if refused is not None:
            self.metrics.refused.labels(refused.code).inc()
            return web.json_response(refused.as_body(), status=refused.status)
        try:
            hs = handshake(request, self.cfg.limits.deflate)
        except HandshakeError as exc:
            raise exc.http_error() from None  # 400, or 426 for a version other than 13

        # From here to the join nothing awaits: the socket changes hands in one step.
        conn = Connection(self, codec, session, ip, hs.deflate_wbits)
        try:
            transport, tail = detach(request, conn, hs.response)
        except HandshakeError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        except ConnectionResetError:
            return Detached()
        conn.connection_made(transport)
        self.connections.add(conn)
        self._per_ip[ip] += 1
        if anonymous:
            self._anon_per_ip[ip] += 1
            self._anon_rooms.setdefault(ip, Counter())[session.room] += 1
        self.metrics.connections.inc()
        if self.cfg.limits.socket_sndbuf_bytes:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.cfg.limits.socket_sndbuf_bytes)
        if tail:
            conn.data_received(tail)  # e.g. a first frame sent with the upgrade request

        user = session.welcome_user()
        try:
            await self.hub.join(conn, session.room, user, since, epoch)
        except Unavailable as exc:
            conn.send_obj({"t": "error", "error": exc.as_dict()})
            conn.bye("unavailable", self.retry_ms())  # clients back off instead of hammering
            return Detached()
        except BaseException:
            transport.abort()
            raise
        if conn.state == LOST:
            self.hub.leave(conn, session.room)  # it went away while joining
        else:
            conn.open()
        return Detached()

    def release(self, conn: Connection) -> None:
        """The socket is gone (Connection.connection_lost): forget everything about it."""
        if conn not in self.connections:
            return
        if conn.ready:  # joined; a socket lost while joining is left by `handle`
            self.hub.leave(conn, conn.session.room)
        self.connections.discard(conn)
        self._per_ip[conn.ip] -= 1
        if self._per_ip[conn.ip] <= 0:
            del self._per_ip[conn.ip]
        if conn.session.identity.anonymous:
            self._anon_per_ip[conn.ip] -= 1
            if self._anon_per_ip[conn.ip] <= 0:
                del self._anon_per_ip[conn.ip]
            rooms = self._anon_rooms.get(conn.ip)
            if rooms is not None:
                rooms[conn.session.room] -= 1
                if rooms[conn.session.room] <= 0:
                    del rooms[conn.session.room]
                if not rooms:
                    del self._anon_rooms[conn.ip]
        self._likes.pop(conn, None)
        self.metrics.connections.dec()

    def on_message(self, conn: Connection, data: bytes | str) -> None:
        """One client message, at once: checks that need no I/O (decode, parse, rate) answer
        here; ops are queued in order (Connection.ordered) and run by `run_op`. Its size was
        checked by the Connection (over max_frame_bytes never arrives here)."""
        fid: int | None = None
        if conn.session.identity.expired(time.time()):
            conn.bye("expired")  # its token ended before the sweep saw it: nothing more runs
            return
        try:
            m = decode(data, conn.codec, self.cfg.limits.max_frame_bytes)
            fid = F.frame_id(m)
            op = F.parse(m)
            if not conn.take_frame():
                raise ReplyError(RATE_LIMITED, "too many frames")
            self.metrics.frame_in(m["t"])
            if isinstance(op, F.Like):
                n = self._likes_allowed(conn, op.n)  # taps past the rate are dropped, not refused
                if n < op.n:
                    op = F.Like(n)
            if isinstance(op, F.Ping):
                pong: dict[str, Any] = {"t": "pong"}
                if fid is not None:
                    pong["id"] = fid
                conn.ordered(frame(pong, conn.codec))
                return
            now = self.ops.answer_now(conn.session, op)  # e.g. a buy of a sale known sold out
            if now is not None:
                conn.ordered(self._refusal(conn, fid, now))  # no task, no I/O
                return
            conn.ordered((op, fid, m["t"]))
        except ReplyError as exc:
            conn.ordered(self._refusal(conn, fid, exc))
            if exc.code in STRIKE_CODES and not conn.take_strike():
                conn.bye("abuse")
        except Exception:
            log.exception("frame failed")
            conn.ordered(self._refusal(conn, fid, ReplyError(INTERNAL, "internal error")))

    async def run_op(self, conn: Connection, op: F.Op, fid: int | None, name: str) -> None:
        """One queued op (Connection._work), its reply written when it is done."""
        try:
            started = time.perf_counter()
            result = await self.ops.handle(conn.session, op)
            self.metrics.op_time(name, time.perf_counter() - started)
            if fid is not None:
                reply: dict[str, Any] = {"t": "reply", "id": fid, "ok": True}
                if result:
                    reply.update(result)
                conn.send_obj(reply)
        except ReplyError as exc:
            conn.send(self._refusal(conn, fid, exc), True)
            if exc.code in STRIKE_CODES and not conn.take_strike():
                conn.bye("abuse")
        except Exception:
            log.exception("op failed")
            conn.send(self._refusal(conn, fid, ReplyError(INTERNAL, "internal error")), True)

    def _refusal(self, conn: Connection, fid: int | None, exc: ReplyError) -> bytes:
        self.metrics.error(exc.code)
        if fid is not None:
            return frame({"t": "reply", "id": fid, "ok": False, "error": exc.as_dict()}, conn.codec)
        return frame({"t": "error", "error": exc.as_dict()}, conn.codec)

    async def drain(self) -> None:
        """Rolling restart: refuse new sockets, tell every viewer to reconnect elsewhere, and
        wait (at most server.drain_timeout_s) for the sockets to close: aiohttp no longer
        knows them, so nothing else would wait for their close handshakes."""
        self.draining = True
        for conn in list(self.connections):
            conn.kick("draining")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.server.drain_timeout_s
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.transport.abort()
        if self.connections:
            await asyncio.sleep(0)  # their connection_lost calls

    # -- heartbeat -------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="ws-heartbeat")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None

    async def _sweep_loop(self) -> None:
        """One timer for the whole hub instead of one per socket. It runs every second (a
        pass over 10,000 sockets costs ~2 ms) so that pings go out as sockets cross their
        threshold, spread over time, not in bursts of a third of the hub."""
        interval = max(0.05, min(1.0, self.cfg.limits.ping_after_s / 3))
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep(time.monotonic(), time.time())
            except Exception:
                log.exception("heartbeat sweep failed")

    def sweep(self, now: float, wall: float | None = None) -> None:
        """Ping the sockets silent for ping_after_s (up to 1.5 times that: a fixed
        per-socket jitter, so that sockets that connected together, e.g. after a restart,
        are not pinged together forever); abort those silent for idle_timeout_s (a pong, or
        any byte, counts as life). A socket whose token expired (`wall`: Unix time) gets
        `bye expired` (reconnect with a fresh token): no timer per socket."""
        self.metrics.outbox_bytes.set(self.outbox.total)
        lim = self.cfg.limits
        ping_after = lim.ping_after_s
        idle = lim.idle_timeout_s
        for conn in list(self.connections):
            if wall is not None and conn.session.identity.expired(wall):
                conn.bye("expired")
                continue
            silent = now - conn.last_rx
            if silent < ping_after:
                continue
            if silent >= idle:
                # `bye idle` then the close (counted in liveroom_byes_total by `bye`); a peer
                # that is gone never answers the close and is aborted CLOSE_WAIT_S later
                conn.bye("idle")
            elif silent >= ping_after * (1.0 + ((id(conn) >> 4) & 63) / 128):
                conn.ping()
