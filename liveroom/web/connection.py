"""One viewer's socket: our own slim server side of RFC 6455, and the hub's bounded `send`.

After the upgrade (web/takeover.py) the transport's protocol is a `Connection`: one slotted
object per socket. While the viewer is idle it has no task, no coroutine, no timer and no
per-socket buffer objects, so CPython's full cycle collection has little to walk per viewer.

Frames in: `data_received` feeds the bytes to the connection's `FrameReader`
(protocol/wsframes.py, which owns framing, fragments, inflate and every RFC 6455 check) and
acts on its events: pings answered and close frames echoed at once, violations failed with
the code the reader names, messages handed to `WsEndpoint.on_message` (web/ws.py), which
checks and parses them. Ops await Redis and replies must keep the order of the frames:
work goes into a small per-connection inbox served by one task that exists only while the
inbox is not empty; over INBOX_MAX queued items reading is paused until it drains.

Frames out: written straight to the transport. Server frames are unmasked, so the bytes the
hub built once per room and tick are complete frames for every socket, and an uncompressed
write needs no lock. The transport's write buffer is the outbox; its size bounds what one
connection may hold. Above `outbox_bytes` the connection is slow: frames with only comments
and latest-value counters are skipped for it (the next tick carries fresh counters),
essential frames still go; above four times that it gets `bye slow` and may reconnect and
resume from history. A slow phone costs the room nothing but a skip. Pongs and pings go
through the same check as a skippable frame. What every socket holds counts against the
hub-wide budget too (web/outbox.py): `held` is the buffer size seen at the last write, and
the hub's total moves only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Union

from liveroom.core.rules import take_token
from liveroom.errors import BYE
from liveroom.protocol.codec import OP_PONG, PING_FRAME, Codec, close_frame, frame, ws_frame
from liveroom.protocol.wsframes import Close, FrameReader, Ping, Pong, ProtocolViolation, TooLarge

if TYPE_CHECKING:
    from liveroom.core.session import Session
    from liveroom.protocol import frames as F
    from liveroom.web.ws import WsEndpoint

log = logging.getLogger(__name__)

SLOW_FACTOR = 4
INBOX_MAX = 32  # queued frames before reading is paused (resumed at half)
CLOSE_WAIT_S = 2.0  # after our close frame: the peer has this long to answer, then abort

# connection states
OPEN = 0
CLOSING = 1  # we sent a close frame (or answered one): nothing more is sent, data in is ignored
LOST = 2  # the transport is gone

# one (codec, deflate window bits) tuple shared by all the sockets that use it: a tuple per
# socket was one more object for the cycle collector per idle viewer (bench/gc_objects.py)
_WIRES: dict[tuple[Codec, int], tuple[Codec, int]] = {}

# what the inbox holds: a ready frame to write in order, or (op, frame id, op name) to run
Item = Union[bytes, "tuple[F.Op, int | None, str]"]


class Connection(asyncio.Protocol):
    __slots__ = (
        "endpoint",
        "transport",
        "codec",
        "wire",
        "user_id",
        "session",
        "ip",
        "outbox_bytes",
        "held",
        "state",
        "ready",
        "reader",
        "inbox",
        "worker",
        "paused",
        "last_rx",
        "frame_tokens",
        "frame_stamp",
        "strike_tokens",
        "strike_stamp",
        "closer",
        "owed_dropped",
    )

    def __init__(self, endpoint: WsEndpoint, codec: Codec, session: Session, ip: str, deflate_wbits: int = 0) -> None:
        lim = endpoint.cfg.limits
        self.endpoint = endpoint
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.codec = codec
        self.wire = _WIRES.setdefault((codec, deflate_wbits), (codec, deflate_wbits))
        self.user_id = session.identity.id
        self.session = session
        self.ip = ip
        self.outbox_bytes = lim.outbox_bytes
        self.held = 0  # bytes in the write buffer when last seen (the hub's total counts them)
        self.state = OPEN  # anything else: nothing more is sent or run
        self.ready = False  # joined the room (hub.leave is owed): queued frames may run
        self.reader = FrameReader(lim.max_frame_bytes, bool(deflate_wbits))
        self.inbox: deque[Item] | None = None  # exists only while there is work
        self.worker: asyncio.Task[None] | None = None
        self.paused = False
        self.last_rx = time.monotonic()
        now = self.last_rx
        self.frame_tokens = float(max(lim.frame_burst, 1))
        self.frame_stamp = now
        self.strike_tokens = float(max(lim.max_strikes, 1))  # patience, regrowing 1/s
        self.strike_stamp = now
        self.closer: asyncio.TimerHandle | None = None
        self.owed_dropped = 0  # comments in frames skipped while slow, not yet told

    # -- the hub's side --------------------------------------------------------------------

    def send(self, data: bytes, essential: bool, comments: int = 0) -> None:
        if self.state != OPEN:
            return
        t = self.transport
        if t.is_closing():
            return
        buffered = t.get_write_buffer_size()
        if buffered != self.held:  # a socket that keeps up holds 0: nothing to count
            self._held(buffered)
        if buffered > self.outbox_bytes:
            if buffered > SLOW_FACTOR * self.outbox_bytes:
                self.kick("slow")
                return
            if not essential:
                self.endpoint.metrics.slow_skips.inc()
                self.owed_dropped += comments
                return
        if self.owed_dropped:
            # the comments of the frames skipped meanwhile, counted as the contract says:
            # one small frame of this viewer's own, once per slow spell (not per message)
            owed, self.owed_dropped = self.owed_dropped, 0
            t.write(frame({"t": "batch", "room": self.session.room, "events": [], "dropped": owed}, self.codec))
        t.write(data)

    def _held(self, n: int) -> None:
        self.held = n
        self.endpoint.outbox.moved(self, n)

    def send_obj(self, obj: Any) -> None:
        """A one-off frame (reply, error, pong): always essential."""
        self.send(frame(obj, self.codec), True)

    def kick(self, reason: str) -> None:
        """`bye` from outside the frame handling, e.g. in the middle of a fan-out loop: on
        the next loop iteration, so that nothing is re-entered."""
        if self.state == OPEN:
            asyncio.get_running_loop().call_soon(self.bye, reason)

    def bye(self, reason: str, retry_ms: int | None = None) -> None:
        """The last frame this socket gets: `bye`, then a close frame with the reason's code.
        The peer has CLOSE_WAIT_S to answer the close, then the socket is aborted (a slow
        peer may never read it: do not hold its buffer hostage). `retry_ms`: when to
        reconnect (Redis did not answer: clients back off instead of hammering)."""
        if self.state != OPEN or self.transport.is_closing():
            return
        close_code, reconnect = BYE.get(reason, (1011, True))
        self.endpoint.metrics.byes.labels(reason).inc()
        msg: dict[str, Any] = {"t": "bye", "reason": reason, "reconnect": reconnect}
        if retry_ms is not None:
            msg["retry_ms"] = retry_ms
        # written past the outbox limit on purpose
        last = frame(msg, self.codec)
        self._close(close_code, reason.encode(), last)

    def ping(self) -> None:
        """A WebSocket ping (the heartbeat sweep, web/ws.py): any answer counts as life.
        Skipped for a slow socket, like any frame that can wait."""
        self.send(PING_FRAME, False)

    def _close(self, code: int | None, reason: bytes = b"", before: bytes = b"") -> None:
        """Send our close frame (after `before`); from now on nothing else is sent or run.
        Only once: a second close frame is never written (RFC 6455 section 5.5.1)."""
        if self.inbox:
            self.inbox.clear()  # frames queued behind the close are not answered
        if self.state != OPEN:
            return  # ours is already written, or the socket is gone
        self.state = CLOSING
        if self.held:
            self._held(0)  # its buffer goes with the socket within CLOSE_WAIT_S
        t = self.transport
        if not t.is_closing():
            t.write(before + close_frame(code, reason))
        self._arm_closer()

    def _arm_closer(self) -> None:
        if self.closer is None and self.state != LOST:
            self.closer = asyncio.get_running_loop().call_later(CLOSE_WAIT_S, self.transport.abort)

    def _fail(self, code: int, reason: str) -> None:
        """A protocol violation (RFC 6455 section 7.1.7): close frame, then the socket."""
        log.debug("closing %s: %s", self.ip, reason)
        self._close(code, reason.encode())
        self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.state == LOST:
            return
        self.state = LOST
        if self.held:
            self._held(0)
        self.reader.discard()
        if self.closer is not None:
            self.closer.cancel()
            self.closer = None
        self.endpoint.release(self)

    def pause_writing(self) -> None:
        """The write buffer is the outbox: `send` looks at its size, nothing waits on it.
        Past the transport's high-water mark: the hub's total learns the size now."""
        if self.state == OPEN:
            self._held(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        """Drained below the low-water mark: the hub's total learns it without a write."""
        if self.state == OPEN and self.held:
            self._held(self.transport.get_write_buffer_size())

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.reader.feed(data)
        self._read()

    # -- frames in -------------------------------------------------------------------------

    def _read(self) -> None:
        """Act on the reader's events until it needs more bytes, the socket is closing, or the
        inbox is full (then reading pauses; what is buffered stays in the reader)."""
        reader = self.reader
        while reader.buf:
            if self.inbox is not None and len(self.inbox) >= INBOX_MAX:
                self.paused = True
                if self.state != LOST:
                    self.transport.pause_reading()
                return
            ev = reader.next_event()
            if ev is None:
                return
            kind = ev.__class__  # compared with `is`: cheaper than isinstance() on every message
            if kind is bytes or kind is str:  # a message
                if self.state == OPEN:  # once we are closing, data is no longer read
                    self.endpoint.on_message(self, ev)  # type: ignore[arg-type]  # bytes or str
            elif isinstance(ev, Ping):
                if self.state == OPEN and self._control_allowed():
                    # bounded like any frame that can wait: a slow socket's pongs are skipped
                    self.send(ws_frame(ev.payload, OP_PONG), False)
            elif isinstance(ev, Pong):
                if self.state == OPEN:
                    self._control_allowed()  # and it counts as life (last_rx)
            elif isinstance(ev, Close):
                if self.state == OPEN:
                    self._close(ev.code)  # echo the peer's code (RFC 6455 section 5.5.1)
                self.transport.close()  # the server closes TCP first
            elif isinstance(ev, TooLarge):
                if self.state == OPEN:
                    self.bye("too_large")
            elif isinstance(ev, ProtocolViolation):
                self._fail(ev.code, ev.reason)
            if self.transport.is_closing():
                return  # closed by the peer, a violation or the endpoint: the rest is moot

    # -- ordered work ----------------------------------------------------------------------

    def ordered(self, item: Item) -> None:
        """A reply or an op to run, in the order the frames came: written at once when
        nothing is queued, else queued behind the work in flight."""
        if self.state != OPEN:
            return
        inbox = self.inbox
        if inbox is None:
            if self.ready and item.__class__ is bytes:
                self.send(item, True)
                return
            inbox = self.inbox = deque()
            inbox.append(item)
            if self.ready:
                self.worker = asyncio.get_running_loop().create_task(self._work())
            return
        inbox.append(item)

    def open(self) -> None:
        """Joined the room (the welcome is sent): queued frames may run now."""
        self.ready = True
        if self.inbox and self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        """Runs while the inbox is not empty, then ends: an idle connection has no task."""
        inbox = self.inbox
        assert inbox is not None
        try:
            while inbox:
                item = inbox.popleft()
                if item.__class__ is bytes:
                    self.send(item, True)
                else:
                    await self.endpoint.run_op(self, *item)
                if self.paused and len(inbox) <= INBOX_MAX // 2:
                    self._resume()
        finally:
            self.worker = None
            self.inbox = None
            if self.paused:
                self._resume()

    def _resume(self) -> None:
        self.paused = False
        if self.state == LOST:
            return
        self._read()
        if not self.paused and self.state != LOST and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- per-connection limits -------------------------------------------------------------

    def take_frame(self) -> bool:
        """The frame-rate bucket (limits.frame_rate per second, frame_burst)."""
        lim = self.endpoint.cfg.limits
        if lim.frame_rate <= 0:
            return True
        now = time.monotonic()
        ok, self.frame_tokens = take_token(self.frame_tokens, now - self.frame_stamp, lim.frame_rate, lim.frame_burst)
        self.frame_stamp = now
        return ok

    def _control_allowed(self) -> bool:
        """Pings and pongs count against the frame rate like any frame: a ping flood gets
        no pongs past it, costs strikes, and ends in `bye abuse`."""
        if self.take_frame():
            return True
        if not self.take_strike():
            self.bye("abuse")
        return False

    def take_strike(self) -> bool:
        """Patience: max_strikes bad or refused frames, regrowing one per second."""
        now = time.monotonic()
        ok, self.strike_tokens = take_token(
            self.strike_tokens, now - self.strike_stamp, 1.0, self.endpoint.cfg.limits.max_strikes
        )
        self.strike_stamp = now
        return ok
