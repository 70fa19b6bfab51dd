"""The local hub: which viewers of which rooms this process holds, and the per-tick fan-out.

Path of an event: the broker's listener calls `on_message` (a plain function: it appends to
the room's pending list and returns), the ticker wakes every `tick_ms`, builds each dirty
room's `batch` once, encodes it once per codec in use, wraps it in one WebSocket frame and
hands the same bytes to every viewer's `send`. No per-viewer coroutine, encode or copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack

from liveroom.broker.redis import BrokerMsg, DurableMsg, LikesMsg, RedisBroker, RoomState, StockMsg
from liveroom.config import Config
from liveroom.core.rules import CommentSampler
from liveroom.core.sales import live_sales
from liveroom.core.session import Session
from liveroom.errors import ReplyError, Unavailable
from liveroom.metrics import Metrics
from liveroom.protocol.codec import Codec, deflate_frame, encode, frame, ws_frame

log = logging.getLogger(__name__)

RING = 512  # recent durable events kept in memory per room, to sync late joiners exactly
EMPTY_GRACE_S = 5.0  # keep a room subscribed this long after its last viewer leaves
ONLINE_REFRESH_S = 2.0  # an unchanged online count is still re-sent this often
_UNENCODABLE = (TypeError, ValueError, OverflowError)
RESET_ATTEMPTS = 20  # reads of a room after an epoch change, 0.5 s apart, before giving up


Wire = tuple[Codec, int]


class Viewer(Protocol):
    """What the hub needs of a connection (implemented by web/ws.py)."""

    user_id: str
    session: Session  # who, for a fresh `welcome` after a reset
    codec: Codec
    wire: Wire  # (codec, deflate window bits or 0): viewers sharing a wire share bytes

    def send(self, data: bytes, essential: bool) -> None:
        """Queue one complete WebSocket frame; never blocks. `essential` frames carry
        events a viewer must not miss (anything durable but comments)."""


@dataclass(eq=False)
class LocalRoom:
    id: str
    sampler: CommentSampler
    viewers: dict[Wire, dict[Viewer, None]] = field(default_factory=dict)
    users: Counter[str] = field(default_factory=Counter)
    pending: list[dict[str, Any]] = field(default_factory=list)
    ring: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RING))
    epoch: str = ""
    high_seq: int = 0  # highest seq received from the broker
    flushed_seq: int = 0  # highest seq handed to viewers
    likes: int = 0
    likes_dirty: bool = False
    local_likes: int = 0  # taps on this hub not yet added to Redis
    online: int = 0  # latest count from Redis
    online_sent: int = -1  # what viewers were last sent, and when
    online_at: float = 0.0
    changed: set[str] = field(default_factory=set)  # users who came or went, not yet in Redis
    syncing: bool = False  # a presence_sync of this room is in flight
    stock: dict[str, int] = field(default_factory=dict)  # sale -> latest remaining, unsent
    ready: asyncio.Future[None] | None = None
    repair_until: float = 0.0  # hold durable events while a seq gap is fetched
    # the room's Redis data was lost and it restarts under a new epoch: set while the hub
    # re-reads it; broker messages wait in `held` meanwhile
    resetting: asyncio.Future[None] | None = None
    held: list[DurableMsg] = field(default_factory=list)
    flushed: asyncio.Future[None] | None = None  # joiners waiting for flushed_seq to advance
    empty_since: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.viewers.values())


class Hub:
    def __init__(self, cfg: Config, broker: RedisBroker, metrics: Metrics) -> None:
        self.cfg = cfg
        self.broker = broker
        self.metrics = metrics
        self.rooms: dict[str, LocalRoom] = {}
        self._dirty: set[LocalRoom] = set()
        self._presence_dirty: set[LocalRoom] = set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._tick_s = cfg.room.tick_ms / 1000
        broker.on_reconnect = self._recheck_rooms

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._ticker(), name="ticker"),
            asyncio.create_task(self._presence_loop(), name="presence"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        await self._flush_likes()
        # let in-flight presence calls land first, so none re-adds a user after the reap
        if self._background:
            await asyncio.wait(list(self._background), timeout=2.0)
        for room_id in list(self.rooms):
            for attempt in range(3):
                try:
                    await self.broker.presence_reap(room_id, self.broker.hub_id)
                    break
                except Exception as exc:  # shutting down: other hubs reap us after hub_ttl_ms
                    log.warning("presence cleanup of %s failed (attempt %d): %s", room_id, attempt + 1, exc)

    def spawn(self, coro: Any) -> None:
        """A background task whose reference is kept and whose failure is logged."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, Unavailable):
                log.warning("background task: %s", exc)
            else:
                log.error("background task failed", exc_info=exc)

    def viewers(self) -> int:
        return sum(r.size for r in self.rooms.values())

    # -- joining and leaving ---------------------------------------------------------------

    async def _room(self, room_id: str) -> tuple[LocalRoom, RoomState]:
        """The local room, subscribed and initialised, and the room's current state."""
        room = self.rooms.get(room_id)
        if room is None:
            room = LocalRoom(room_id, CommentSampler(self.cfg.room.viewer_comment_cap, self.cfg.room.tick_ms))
            self.rooms[room_id] = room
        room.empty_since = None
        async with room.lock:
            if room.ready is None:
                try:
                    await self.broker.subscribe(room_id)
                    state = await self.broker.state(room_id)
                except BaseException:
                    if room.size == 0 and self.rooms.get(room_id) is room:
                        del self.rooms[room_id]
                    raise
                room.epoch = state.epoch
                room.high_seq = room.flushed_seq = state.seq
                room.likes, room.online = state.likes, state.online
                room.ready = asyncio.get_running_loop().create_future()
                room.ready.set_result(None)
                return room, state
        return room, await self.broker.state(room_id)

    async def join(
        self, viewer: Viewer, room_id: str, user: dict[str, str], since: int | None, epoch: str | None
    ) -> None:
        """Attach a viewer and send its `welcome` (and missed events when resuming).

        The welcome's `state` and `seq` come from one atomic read (room_state.lua), so they
        agree; every durable event after that seq follows it, from the ring (events the hub
        already flushed while the read was in flight) or with the next ticks."""
        room, state = await self._room(room_id)
        first_here = room.users[viewer.user_id] == 0
        room.users[viewer.user_id] += 1  # counted now, so a racing leave cannot undercount
        if first_here:
            self._presence_changed(room, viewer.user_id)
        # the arrival reaches Redis with the next tick; the welcome counts it already
        try:
            state = await self._settle(room, state)
            backlog: list[dict[str, Any]] = []
            recovered = False
            if since is not None and epoch == state.epoch and since <= state.seq:
                if since >= state.first_seq - 1 or since == state.seq:
                    recovered = True
                    if since < state.seq:
                        backlog = await self._history(room_id, since, state.seq)
            have = backlog[-1]["seq"] if backlog else (since if recovered else state.seq)
            assert have is not None
            for _ in range(3):
                missing = self._from_ring(room, have)
                if missing is not None:
                    break
                # the ring no longer reaches back that far: read the rest from history
                more = await self._history(room_id, have, room.flushed_seq)
                backlog.extend(more)
                if more:
                    have = more[-1]["seq"]
            else:
                missing = []
        except BaseException:
            self._forget_user(room, viewer.user_id)
            raise

        # From here to the end nothing awaits: the viewer is attached between two ticks and
        # gets exactly the events after `have` (up to flushed_seq now, the rest with the ticks).
        backlog.extend(missing)
        state_online = state.online + 1 if first_here else state.online
        room.online = max(room.online, state_online)
        welcome = self._welcome(room, state, user, recovered)
        welcome["state"]["online"] = state_online
        viewer.send(frame(welcome, viewer.codec), True)
        if backlog:
            viewer.send(frame({"t": "batch", "room": room_id, "events": backlog}, viewer.codec), True)
        room.viewers.setdefault(viewer.wire, {})[viewer] = None
        self.metrics.viewers.inc()

    def _welcome(self, room: LocalRoom, state: RoomState, user: dict[str, str], recovered: bool) -> dict[str, Any]:
        pinned = state.meta.get(b"pinned")
        return {
            "t": "welcome",
            "room": room.id,
            "user": user,
            "epoch": state.epoch,
            "seq": state.seq,
            "state": {
                "online": room.online,
                "likes": max(room.likes, state.likes),
                "pinned": msgpack.unpackb(pinned) if pinned else None,
                "sales": live_sales(state.sales),
                "draw": None,
            },
            "recovered": recovered,
        }

    async def _history(self, room_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        """Durable events after `after`, up to `upto`, as events with their seq."""
        out: list[dict[str, Any]] = []
        if upto <= after:
            return out
        for seq, body in await self.broker.history(room_id, after, min(upto - after, self.cfg.room.history_len)):
            if seq > upto:
                break
            ev = msgpack.unpackb(body)
            ev["seq"] = seq
            out.append(ev)
        return out

    @staticmethod
    def _from_ring(room: LocalRoom, have: int) -> list[dict[str, Any]] | None:
        """The flushed events after `have`, or None when the ring does not reach back."""
        if have >= room.flushed_seq:
            return []
        if not room.ring or room.ring[0]["seq"] > have + 1:
            return None
        return [e for e in room.ring if have < e["seq"] <= room.flushed_seq]

    async def _settle(self, room: LocalRoom, state: RoomState) -> RoomState:
        """A state read that the room's local view agrees with: same epoch (else the room
        is reset first), and everything up to its seq received, so that the events after
        it are exactly those the hub flushes from now on."""
        for _ in range(3):
            if room.resetting is not None:
                await asyncio.shield(room.resetting)
                state = await self.broker.state(room.id)
                continue
            if state.epoch != room.epoch:
                await self._reset(room)
                state = await self.broker.state(room.id)
                continue
            break
        if room.flushed_seq < state.seq:
            # events published before the read that this hub has not flushed yet: wait for
            # them (a tick, usually), fetching them from history if they do not come
            wait = 2 * self._tick_s + 0.2
            try:
                await self._flushed_past(room, state.seq, wait)
            except TimeoutError:
                if room.high_seq < state.seq:
                    await self._repair(room, room.high_seq, state.seq + 1)
                try:
                    await self._flushed_past(room, state.seq, wait)
                except TimeoutError:
                    log.warning("room %s: seq %d not flushed in time; a joiner may see it twice", room.id, state.seq)
        return state

    async def _flushed_past(self, room: LocalRoom, seq: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while room.flushed_seq < seq:
                if room.flushed is None:
                    room.flushed = asyncio.get_running_loop().create_future()
                await asyncio.shield(room.flushed)

    def leave(self, viewer: Viewer, room_id: str) -> None:
        room = self.rooms.get(room_id)
        group = room.viewers.get(viewer.wire) if room is not None else None
        if room is None or group is None or viewer not in group:
            return
        del group[viewer]
        self.metrics.viewers.dec()
        self._forget_user(room, viewer.user_id)

    def _forget_user(self, room: LocalRoom, user_id: str) -> None:
        room.users[user_id] -= 1
        if room.users[user_id] <= 0:
            del room.users[user_id]
            self._presence_changed(room, user_id)
        if not room.users:
            room.empty_since = time.monotonic()

    def _presence_changed(self, room: LocalRoom, user_id: str) -> None:
        room.changed.add(user_id)
        self._presence_dirty.add(room)

    async def _presence_sync(self, room: LocalRoom) -> None:
        """One call that makes Redis match who is here now, for everyone who came or went.

        Whether a user arrived or left is read from `room.users` when the call is made, so
        a user who left and came back within a tick is one no-op; on failure the users go
        back into `changed` and the next tick tries again (the script is idempotent).
        """
        changed, room.changed = room.changed, set()
        arrived = [u for u in changed if u in room.users]
        gone = [u for u in changed if u not in room.users]
        try:
            online = await self.broker.presence_sync(room.id, arrived, gone, self.cfg.room.hub_ttl_ms)
        except BaseException:
            room.changed |= changed
            self._presence_dirty.add(room)
            raise
        finally:
            room.syncing = False
        room.online = online
        self._dirty.add(room)

    # -- events from the broker ------------------------------------------------------------

    def on_message(self, room_id: str, msg: BrokerMsg) -> None:
        """Called by the pub/sub listener for every message: append and return."""
        room = self.rooms.get(room_id)
        if room is None or room.ready is None:
            return
        if isinstance(msg, LikesMsg):
            if msg.total > room.likes:
                room.likes = msg.total
                room.likes_dirty = True
                self._dirty.add(room)
            return
        if isinstance(msg, StockMsg):
            room.stock[msg.sale] = msg.remaining  # latest value wins within a tick
            self._dirty.add(room)
            return
        if isinstance(msg, DurableMsg):
            if room.resetting is not None:
                room.held.append(msg)  # replayed once the room is re-read
                return
            if msg.epoch != room.epoch:
                # the room's data was lost and restarted under a new epoch (a Redis shard
                # restarted empty): re-read it and start its viewers over
                log.warning("room %s: epoch %s -> %s", room_id, room.epoch, msg.epoch)
                room.held.append(msg)
                self.spawn(self._reset(room))
                return
            if msg.seq <= room.high_seq:
                return  # already have it (repaired from history)
            if msg.seq > room.high_seq + 1:
                self.spawn(self._repair(room, room.high_seq, msg.seq))
            room.high_seq = msg.seq
            ev = msgpack.unpackb(msg.body)
            ev["seq"] = msg.seq
            room.pending.append(ev)
            self._dirty.add(room)
            self.metrics.events_in.inc()

    async def _repair(self, room: LocalRoom, after: int, upto: int) -> None:
        """Fetch durable events a pub/sub reconnect made us miss, holding the room meanwhile."""
        room.repair_until = time.monotonic() + 1.0
        try:
            got = await self._history(room.id, after, upto - 1)
        finally:
            room.repair_until = 0.0
        have = {e["seq"] for e in room.pending}
        for ev in got:
            seq = ev["seq"]
            if after < seq < upto and seq not in have and seq > room.flushed_seq:
                room.pending.append(ev)
                room.high_seq = max(room.high_seq, seq)
        self.metrics.repairs.inc()
        self._dirty.add(room)

    async def _reset(self, room: LocalRoom) -> None:
        """Start a room over under its new epoch: its Redis data was lost (a shard restarted
        without persistence). Every viewer here gets a fresh `welcome` (`recovered: false`,
        the state as Redis has it now: a sale that was lost is gone) followed by every event
        of the new epoch so far, then the live events: nothing of the new epoch is lost."""
        if room.resetting is not None:
            await asyncio.shield(room.resetting)
            return
        room.resetting = asyncio.get_running_loop().create_future()
        try:
            for attempt in range(RESET_ATTEMPTS):
                try:
                    state = await self.broker.state(room.id)
                    events = await self._history(room.id, 0, 1 << 62)
                    break
                except Unavailable as exc:
                    log.warning("room %s: re-reading after an epoch change: %s", room.id, exc)
                    if attempt == RESET_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(0.5)
            last = events[-1]["seq"] if events else 0
            room.epoch = state.epoch
            room.pending = []  # events of the lost epoch that were not flushed yet
            room.ring.clear()
            room.ring.extend(events)
            room.high_seq = room.flushed_seq = last
            room.stock = {}
            self.metrics.resets.inc()
            self._rewelcome(room, state, events)
        finally:
            done, room.resetting = room.resetting, None
            done.set_result(None)
        held, room.held = room.held, []
        for msg in held:
            self.on_message(room.id, msg)  # those of the new epoch after `last` go out next
        if room.flushed is not None:
            room.flushed.set_result(None)
            room.flushed = None

    def _rewelcome(self, room: LocalRoom, state: RoomState, events: list[dict[str, Any]]) -> None:
        """The fresh welcome and the new epoch's events for every viewer of a reset room
        (a rare event: one encode per viewer for the welcome, which names the viewer)."""
        backlog: dict[Codec, bytes] = {}
        for (codec, _), viewers in room.viewers.items():
            if events and codec not in backlog:
                backlog[codec] = frame({"t": "batch", "room": room.id, "events": events}, codec)
            for v in viewers:
                welcome = self._welcome(room, state, v.session.welcome_user(), False)
                v.send(frame(welcome, codec), True)
                if events:
                    v.send(backlog[codec], True)

    def _recheck_rooms(self, rooms: list[str]) -> None:
        """After a pub/sub reconnect: check each room for events published meanwhile, and
        for a new epoch (its shard restarted empty while we were away)."""
        for room_id in rooms:
            room = self.rooms.get(room_id)
            if room is not None and room.ready is not None:
                self.spawn(self._recheck(room))

    async def _recheck(self, room: LocalRoom) -> None:
        state = await self.broker.state(room.id)
        if state.epoch != room.epoch:
            log.warning("room %s: epoch %s -> %s (found after a reconnect)", room.id, room.epoch, state.epoch)
            await self._reset(room)
        elif state.seq > room.high_seq:
            await self._repair(room, room.high_seq, state.seq + 1)

    # -- the tick --------------------------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self._tick_s
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = loop.time()  # running late: do not try to catch up in a burst
            try:
                self.tick()
            except Exception:
                log.exception("tick failed")

    def tick(self) -> None:
        if any(r.local_likes for r in self.rooms.values()):
            self.spawn(self._flush_likes())
        if self._presence_dirty and not self._stopping:
            todo, self._presence_dirty = self._presence_dirty, set()
            for room in todo:
                if room.syncing:
                    self._presence_dirty.add(room)  # one call per room in flight, in order
                elif room.changed:
                    room.syncing = True  # now, not when the task first runs
                    self.spawn(self._presence_sync(room))
        now = time.monotonic()
        for room in self.rooms.values():
            if now - room.online_at >= ONLINE_REFRESH_S:
                self._dirty.add(room)  # the unchanged count, re-sent every ONLINE_REFRESH_S
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for room in dirty:
            if room.repair_until > now:
                self._dirty.add(room)
                continue
            try:
                self._flush(room, now)
            except Exception:  # one room's failure never holds up the others
                log.exception("room %s: flush failed", room.id)

    def _flush(self, room: LocalRoom, now: float) -> None:
        durable = [e for e in room.pending if e["seq"] > room.flushed_seq]
        durable.sort(key=lambda e: e["seq"])
        ephemeral: list[dict[str, Any]] = []
        if room.likes_dirty:
            ephemeral.append({"type": "likes", "total": room.likes})
        online_due = room.online != room.online_sent or now - room.online_at >= ONLINE_REFRESH_S
        if online_due:
            ephemeral.append({"type": "online", "count": room.online})
        ephemeral.extend({"type": "stock", "sale": s, "remaining": n} for s, n in room.stock.items())
        if (durable or ephemeral) and room.size:
            try:
                self._fan_out(room, durable, ephemeral)
            except _UNENCODABLE:  # nothing was sent: find the culprit, the rest waits a tick
                self._drop_unencodable(room, durable)
                self._dirty.add(room)
                return
        # sent: from here on the events are the viewers'
        room.pending = []
        room.likes_dirty = False
        room.stock = {}
        if online_due:
            room.online_sent = room.online
            room.online_at = now
        if durable:
            room.flushed_seq = durable[-1]["seq"]
            room.ring.extend(durable)
            if room.flushed is not None:
                room.flushed.set_result(None)
                room.flushed = None

    def _drop_unencodable(self, room: LocalRoom, durable: list[dict[str, Any]]) -> None:
        """An event that cannot be encoded (a value no check refused: a bug) is dropped alone
        and logged; never the room's batch, never another room's."""
        bad = set()
        for codec in Codec:
            for e in durable:
                try:
                    encode(e, codec)
                except _UNENCODABLE as exc:
                    bad.add(id(e))
                    log.error("room %s: event %d cannot be encoded as %s (%s); dropped", room.id, e["seq"], codec.value, exc)
        self.metrics.dropped_events.inc(len(bad))
        room.pending = [e for e in room.pending if id(e) not in bad]

    def _fan_out(self, room: LocalRoom, durable: list[dict[str, Any]], ephemeral: list[dict[str, Any]]) -> None:
        """One batch for the room, encoded once per codec, the same bytes to every socket."""
        comments = [e for e in durable if e["type"] == "comment"]
        pick = room.sampler.pick(len(comments)) if comments else None
        own: dict[str, list[dict[str, Any]]] = {}
        if pick is None:
            shared = durable
            dropped = 0
        else:
            keep = {id(comments[i]) for i in pick}
            shared = [e for e in durable if e["type"] != "comment" or id(e) in keep]
            dropped = len(comments) - len(pick)
            for e in comments:
                if id(e) not in keep:
                    uid = e["user"]["id"]
                    if uid in room.users:
                        own.setdefault(uid, []).append(e)
            self.metrics.sampled_out.inc(dropped * room.size)
        essential = len(shared) > len(comments) if pick is None else any(e["type"] != "comment" for e in shared)

        batch: dict[str, Any] = {"t": "batch", "room": room.id, "events": shared + ephemeral}
        if dropped:
            batch["dropped"] = dropped
        sent = 0
        # every codec's bytes before the first write: a failed encode sends nothing
        payloads = {codec: encode(batch, codec) for (codec, _), vs in room.viewers.items() if vs}
        self.metrics.encodes.inc(len(payloads))
        for (codec, wbits), viewers in room.viewers.items():
            if not viewers:
                continue
            payload = payloads[codec]
            data = deflate_frame(payload, codec.opcode, wbits) if wbits else ws_frame(payload, codec.opcode)
            if own:
                for v in viewers:
                    mine = own.get(v.user_id)
                    if mine is None:
                        v.send(data, essential)
                    else:
                        try:
                            personal = self._personal(room.id, shared, mine, ephemeral, dropped, codec)
                        except _UNENCODABLE:
                            personal = data
                        v.send(personal, essential)
            else:
                for v in viewers:
                    v.send(data, essential)
            sent += len(viewers)
        self.metrics.deliveries.inc(sent)
        self.metrics.batches.inc()

    @staticmethod
    def _personal(
        room_id: str,
        shared: list[dict[str, Any]],
        mine: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
        dropped: int,
        codec: Codec,
    ) -> bytes:
        """A viewer whose own comment was sampled out still sees it: a rare extra encode."""
        events = sorted(shared + mine, key=lambda e: e.get("seq", 0)) + ephemeral
        batch: dict[str, Any] = {"t": "batch", "room": room_id, "events": events}
        if dropped - len(mine):
            batch["dropped"] = dropped - len(mine)
        return frame(batch, codec)

    # -- likes and presence ----------------------------------------------------------------

    def add_likes(self, room_id: str, n: int) -> None:
        room = self.rooms.get(room_id)
        if room is not None:
            room.local_likes += n

    async def _flush_likes(self) -> None:
        """Each room's taps of the last tick, added to Redis in one call per room."""
        todo = [(r, r.local_likes) for r in self.rooms.values() if r.local_likes]
        for room, n in todo:
            room.local_likes -= n

        async def one(room: LocalRoom, n: int) -> None:
            try:
                total = await self.broker.add_likes(room.id, n)
            except ReplyError:
                room.local_likes += n  # Redis unreachable: keep the taps for the next tick
                raise
            if total > room.likes:
                room.likes = total
                room.likes_dirty = True
                self._dirty.add(room)

        results = await asyncio.gather(*(one(r, n) for r, n in todo), return_exceptions=True)
        for res in results:
            if isinstance(res, Exception):
                log.warning("likes flush: %s", res)

    async def _presence_loop(self) -> None:
        interval = self.cfg.room.presence_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self._presence_round()
            except Exception:
                log.exception("presence round failed")

    async def _presence_round(self) -> None:
        now = time.monotonic()
        for room_id, room in list(self.rooms.items()):
            try:
                await self._presence_room(room_id, room, now)
            except ReplyError as exc:  # Redis could not do it: next round
                log.warning("presence %s: %s", room_id, exc)
            except Exception:  # one room's failure never stops the round
                log.exception("presence %s failed", room_id)

    async def _presence_room(self, room_id: str, room: LocalRoom, now: float) -> None:
        if (
            room.empty_since is not None
            and now - room.empty_since > EMPTY_GRACE_S
            and not room.users
            and not room.changed  # departures still to reach Redis
            and not room.syncing
        ):
            async with room.lock:
                if room.users or self.rooms.get(room_id) is not room:
                    return
                del self.rooms[room_id]
                await self.broker.unsubscribe(room_id)
            return
        if room.ready is None:
            return
        # how many users Redis should list for this hub, when nothing is in flight
        expect = -1 if room.syncing or room.changed else len(room.users)
        online, lost, dead = await self.broker.presence_beat(room_id, self.cfg.room.hub_ttl_ms, expect)
        if lost:
            # our users are gone from Redis (the shard restarted empty, or other hubs took us
            # for dead during a stall): register every one of them again
            log.warning("room %s: presence lost in Redis; registering %d users again", room_id, len(room.users))
            await self.broker.presence_reap(room_id, self.broker.hub_id)  # whatever is left of it
            room.changed.update(room.users)
            self._presence_dirty.add(room)
        for hub_id in dead:
            log.info("room %s: reaping dead hub %s", room_id, hub_id)
            online = await self.broker.presence_reap(room_id, hub_id)
        room.online = online
        self._dirty.add(room)  # sent with the next tick if it changed
