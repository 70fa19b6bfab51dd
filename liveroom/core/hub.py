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
from liveroom.errors import ReplyError, Unavailable
from liveroom.metrics import Metrics
from liveroom.protocol.codec import Codec, deflate_frame, encode, frame, ws_frame

log = logging.getLogger(__name__)

RING = 512  # recent durable events kept in memory per room, to sync late joiners exactly
EMPTY_GRACE_S = 5.0  # keep a room subscribed this long after its last viewer leaves
ONLINE_REFRESH_S = 2.0  # an unchanged online count is still re-sent this often


Wire = tuple[Codec, int]


class Viewer(Protocol):
    """What the hub needs of a connection (implemented by web/ws.py)."""

    user_id: str
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
        broker.on_reconnect = self._repair_rooms

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
        """Attach a viewer and send its `welcome` (and missed events when resuming)."""
        room, state = await self._room(room_id)
        first_here = room.users[viewer.user_id] == 0
        room.users[viewer.user_id] += 1  # counted now, so a racing leave cannot undercount
        if first_here:
            self._presence_changed(room, viewer.user_id)
        # the arrival reaches Redis with the next tick; the welcome counts it already
        state_online = state.online + 1 if first_here else state.online
        try:
            backlog: list[dict[str, Any]] = []
            recovered = False
            if since is not None and epoch == state.epoch and since <= state.seq:
                if since >= state.first_seq - 1 or since == state.seq:
                    recovered = True
                    if since < state.seq:
                        for seq, body in await self.broker.history(room_id, since, self.cfg.room.history_len):
                            ev = msgpack.unpackb(body)
                            ev["seq"] = seq
                            backlog.append(ev)
        except BaseException:
            self._forget_user(room, viewer.user_id)
            raise

        # From here to the end nothing awaits: the viewer is attached between two ticks and
        # gets exactly the events after the welcome's seq.
        if recovered:
            have = since or 0
            backlog = [e for e in backlog if e["seq"] <= room.flushed_seq]
            if backlog:
                have = backlog[-1]["seq"]
            backlog.extend(e for e in room.ring if have < e["seq"] <= room.flushed_seq)
        room.online = max(room.online, state_online)
        pinned = state.meta.get(b"pinned")
        welcome = {
            "t": "welcome",
            "room": room_id,
            "user": user,
            "epoch": room.epoch,
            "seq": room.flushed_seq,
            "state": {
                "online": state_online,
                "likes": max(room.likes, state.likes),
                "pinned": msgpack.unpackb(pinned) if pinned else None,
                "sales": live_sales(state.sales),
                "draw": None,
            },
            "recovered": recovered,
        }
        viewer.send(frame(welcome, viewer.codec), True)
        if backlog:
            viewer.send(frame({"t": "batch", "room": room_id, "events": backlog}, viewer.codec), True)
        room.viewers.setdefault(viewer.wire, {})[viewer] = None
        self.metrics.viewers.inc()

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
            if msg.epoch != room.epoch:
                # the room's history was lost and restarted: follow the new numbering
                log.warning("room %s: epoch %s -> %s", room_id, room.epoch, msg.epoch)
                room.epoch = msg.epoch
                room.high_seq = room.flushed_seq = msg.seq - 1
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
            got = await self.broker.history(room.id, after, upto - after)
        finally:
            room.repair_until = 0.0
        have = {e["seq"] for e in room.pending}
        for seq, body in got:
            if after < seq < upto and seq not in have and seq > room.flushed_seq:
                ev = msgpack.unpackb(body)
                ev["seq"] = seq
                room.pending.append(ev)
        self.metrics.repairs.inc()
        self._dirty.add(room)

    def _repair_rooms(self, rooms: list[str]) -> None:
        """After a pub/sub reconnect: check each room for events published meanwhile."""
        for room_id in rooms:
            room = self.rooms.get(room_id)
            if room is not None and room.ready is not None:
                self.spawn(self._repair(room, room.high_seq, 1 << 62))

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
            self._flush(room, now)

    def _flush(self, room: LocalRoom, now: float) -> None:
        durable = room.pending
        room.pending = []
        if durable:
            durable.sort(key=lambda e: e["seq"])
            durable = [e for e in durable if e["seq"] > room.flushed_seq]
        if durable:
            room.flushed_seq = durable[-1]["seq"]
            room.ring.extend(durable)
        ephemeral: list[dict[str, Any]] = []
        if room.likes_dirty:
            ephemeral.append({"type": "likes", "total": room.likes})
            room.likes_dirty = False
        if room.online != room.online_sent or now - room.online_at >= ONLINE_REFRESH_S:
            ephemeral.append({"type": "online", "count": room.online})
            room.online_sent = room.online
            room.online_at = now
        if room.stock:
            ephemeral.extend({"type": "stock", "sale": s, "remaining": n} for s, n in room.stock.items())
            room.stock = {}
        if not durable and not ephemeral:
            return
        if room.size == 0:
            return

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
        payloads: dict[Codec, bytes] = {}
        for (codec, wbits), viewers in room.viewers.items():
            if not viewers:
                continue
            payload = payloads.get(codec)
            if payload is None:
                payload = payloads[codec] = encode(batch, codec)
                self.metrics.encodes.inc()
            data = deflate_frame(payload, codec.opcode, wbits) if wbits else ws_frame(payload, codec.opcode)
            if own:
                for v in viewers:
                    mine = own.get(v.user_id)
                    if mine is None:
                        v.send(data, essential)
                    else:
                        v.send(self._personal(room.id, shared, mine, ephemeral, dropped, codec), essential)
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
            if (
                room.empty_since is not None
                and now - room.empty_since > EMPTY_GRACE_S
                and not room.users
                and not room.changed  # departures still to reach Redis
                and not room.syncing
            ):
                async with room.lock:
                    if room.users or self.rooms.get(room_id) is not room:
                        continue
                    del self.rooms[room_id]
                    await self.broker.unsubscribe(room_id)
                continue
            if room.ready is None:
                continue
            try:
                online, dead = await self.broker.presence_beat(room_id, self.cfg.room.hub_ttl_ms)
                for hub_id in dead:
                    log.info("room %s: reaping dead hub %s", room_id, hub_id)
                    online = await self.broker.presence_reap(room_id, hub_id)
            except Unavailable as exc:
                log.warning("presence %s: %s", room_id, exc)
                continue
            room.online = online
            self._dirty.add(room)  # sent with the next tick if it changed
