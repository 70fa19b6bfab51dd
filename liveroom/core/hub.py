"""The local hub: which rooms this process holds viewers of, joining and leaving, and the
tick that fans each room's events out.

Path of an event: the broker's listener calls `on_message` (a plain function: it appends to
the room's pending list and returns), the ticker wakes every `tick_ms`, builds each dirty
room's batch once (core/batch.py: encoded once per codec, wrapped once per wire) and hands
the same bytes to every viewer's `send`. No per-viewer coroutine, encode or copy.
The room's seq rules are in core/room.py, who is online in core/presence.py, likes in
core/likes.py.
"""

from __future__ import annotations

import asyncio
import logging
import time

from liveroom.broker.base import Broker, BrokerEvents, BrokerMsg, ByeMsg, DurableMsg, LikesMsg, RoomState, StockMsg
from liveroom.config import Config
from liveroom.core import batch, likes
from liveroom.core.ports import HubMetrics, Viewer
from liveroom.core.milestones import Milestones
from liveroom.core.presence import Presence
from liveroom.core.resync import Resync, welcome
from liveroom.core.room import GAP, REUSED, Event, Room
from liveroom.core.rules import CommentSampler
from liveroom.core.tasks import Background
from liveroom.protocol import events
from liveroom.protocol.codec import frame

log = logging.getLogger(__name__)

ONLINE_REFRESH_S = 2.0  # an unchanged online count is still re-sent this often


class Hub:
    def __init__(
        self, cfg: Config, broker: Broker, metrics: HubMetrics, milestones: Milestones | None = None
    ) -> None:
        self.cfg = cfg
        self.broker = broker
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self._dirty: set[Room] = set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.background = Background()
        self.spawn = self.background.spawn  # a task kept until it ends, its failure logged
        self._tick_s = cfg.room.tick_ms / 1000
        self.milestones = milestones
        self.presence = Presence(cfg.room, broker, self.spawn, self._dirty.add, self._drop_room, self._milestone_draws)
        self.resync = Resync(cfg.room, broker, metrics, self.rooms, self.spawn, self._dirty.add, self.on_message)
        self.broker_events = BrokerEvents(self.on_message, self.resync.recheck_rooms)

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
        await likes.flush(self.broker, self.rooms.values(), self._dirty.add, self._milestone_draws)
        # let in-flight presence calls land first, so none re-adds a user after the reap
        await self.background.settle(2.0)
        for room_id in list(self.rooms):
            for attempt in range(3):
                try:
                    await self.broker.presence_reap(room_id, self.broker.hub_id)
                    break
                except Exception as exc:  # shutting down: other hubs reap us after hub_ttl_ms
                    log.warning("presence cleanup of %s failed (attempt %d): %s", room_id, attempt + 1, exc)

    def viewers(self) -> int:
        return sum(r.size for r in self.rooms.values())

    # -- joining and leaving ---------------------------------------------------------------

    async def _room(self, room_id: str) -> tuple[Room, RoomState]:
        """The local room, subscribed and initialised, and the room's current state."""
        room = self.rooms.get(room_id)
        if room is None:
            room = Room(room_id, CommentSampler(self.cfg.room.viewer_comment_cap, self.cfg.room.tick_ms))
            self.rooms[room_id] = room
            self.metrics.rooms.inc()
        room.empty_since = None
        async with room.lock:
            if not room.ready:
                try:
                    await self.broker.subscribe(room_id)
                    state = await self.broker.state(room_id)
                except BaseException:
                    if room.size == 0 and self.rooms.get(room_id) is room:
                        del self.rooms[room_id]
                        self.metrics.rooms.dec()
                    raise
                room.start(state.epoch, state.seq, state.likes, state.online)
                return room, state
        return room, await self.broker.state(room_id)

    async def _drop_room(self, room: Room) -> None:
        async with room.lock:
            if room.users or self.rooms.get(room.id) is not room:
                return
            del self.rooms[room.id]
            self.metrics.rooms.dec()
            await self.broker.unsubscribe(room.id)

    async def join(
        self, viewer: Viewer, room_id: str, user: dict[str, str], since: int | None, epoch: str | None
    ) -> None:
        """Attach a viewer and send its `welcome` (and missed events when resuming).

        The welcome's `state` and `seq` come from one atomic read (room_state.lua), so they
        agree; every durable event after that seq follows it, from the ring (events the hub
        already flushed while the read was in flight) or with the next ticks."""
        room, state = await self._room(room_id)
        # counted now, so a racing leave cannot undercount; it reaches Redis with the next
        # tick, and the welcome counts it already
        first_here = self.presence.arrived(room, viewer.user_id, user.get("name", ""))
        try:
            state = await self.resync.settle(room, state)
            have = state.seq  # what the viewer has: the state, or where it resumes from
            recovered = False
            if since is not None and epoch == state.epoch and since <= state.seq:
                # still in history (or nothing missed): the events after `since` follow
                if since >= state.first_seq - 1 or since == state.seq:
                    have, recovered = since, True
            backlog = await self.resync.backlog(room, have)
        except BaseException:
            self.presence.left(room, viewer.user_id)
            raise
        # From here to the end nothing awaits: the viewer is attached between two ticks.
        state_online = state.online + 1 if first_here else state.online
        room.online = max(room.online, state_online)
        hello = welcome(room, state, user, recovered)
        hello["state"]["online"] = state_online
        viewer.send(frame(hello, viewer.codec), True)
        for data in batch.backlog(room_id, batch.visible(backlog, viewer.user_id), viewer.codec):
            viewer.send(data, True)
        room.viewers.setdefault(viewer.wire, {})[viewer] = None
        self.metrics.viewers.inc()

    def leave(self, viewer: Viewer, room_id: str) -> None:
        room = self.rooms.get(room_id)
        group = room.viewers.get(viewer.wire) if room is not None else None
        if room is None or group is None or viewer not in group:
            return
        del group[viewer]
        self.metrics.viewers.dec()
        self.presence.left(room, viewer.user_id)

    # -- events from the broker ------------------------------------------------------------

    def on_message(self, room_id: str, msg: BrokerMsg) -> None:
        """Called by the pub/sub listener for every message: append and return."""
        room = self.rooms.get(room_id)
        if room is None or not room.ready:
            return
        if isinstance(msg, LikesMsg):
            if likes.seen_total(room, msg.total):
                self._dirty.add(room)
        elif isinstance(msg, StockMsg):
            room.stock[msg.sale] = msg.remaining  # latest value wins within a tick
            self._dirty.add(room)
        elif isinstance(msg, ByeMsg):
            self.send_away(room, msg.user, msg.reason)
        elif isinstance(msg, DurableMsg):
            if room.resetting is not None:
                room.held.append(msg)  # replayed once the room is re-read
            elif msg.epoch != room.epoch:
                # the room's data was lost and restarted under a new epoch (a Redis shard
                # restarted empty): re-read it and start its viewers over
                log.warning("room %s: epoch %s -> %s", room_id, room.epoch, msg.epoch)
                room.held.append(msg)
                self.spawn(self.resync.reset(room))
            else:
                got = room.accept(msg)
                if got == GAP:
                    self.resync.repair_soon(room)
                elif got == REUSED:
                    # a seq had before came with other content: Redis lost acked events (a
                    # lagging replica promoted) and handed their seqs out again
                    log.warning("room %s: seq %d reused with other content", room_id, msg.seq)
                    self.spawn(self.resync.reset(room, fresh=True))
                self._dirty.add(room)
                self.metrics.events_in.inc()

    def send_away(self, room: Room, user: str, reason: str) -> int:
        """Close this hub's sockets of `user` in the room with `bye` `reason` (kick, ban):
        each on the next loop iteration (Viewer.kick), so nothing here is re-entered."""
        if user not in room.users:
            return 0
        gone = [v for group in room.viewers.values() for v in group if v.user_id == user]
        for v in gone:
            v.kick(reason)
        return len(gone)

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
        if any(r.local_likes or r.likes_flush for r in self.rooms.values()):
            self.spawn(likes.flush(self.broker, list(self.rooms.values()), self._dirty.add, self._milestone_draws))
        if not self._stopping:
            self.presence.tick()
        now = time.monotonic()
        for room in self.rooms.values():
            if now - room.online_at >= ONLINE_REFRESH_S:
                self._dirty.add(room)  # the unchanged count, re-sent every ONLINE_REFRESH_S
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for room in dirty:
            try:
                self._flush(room, now)
            except Exception:  # one room's failure never holds up the others
                log.exception("room %s: flush failed", room.id)

    def _flush(self, room: Room, now: float) -> None:
        durable = room.due()
        ephemeral: list[Event] = []
        if room.likes_dirty:
            ephemeral.append(events.likes(room.likes))
        online_due = room.online != room.online_sent or now - room.online_at >= ONLINE_REFRESH_S
        if online_due:
            ephemeral.append(events.online(room.online))
        ephemeral.extend(events.stock(s, n) for s, n in room.stock.items())
        if (durable or ephemeral) and room.size:
            comments = len(batch.sampled(durable))  # the host's and shadowed ones are not sampled
            pick = room.sampler.pick(comments) if comments else None
            try:
                out = batch.build(room.id, durable, ephemeral, pick, [w for w, vs in room.viewers.items() if vs], room.users)
            except batch.UNENCODABLE:  # nothing was sent: drop the culprit, the rest waits a tick
                bad = batch.unencodable(durable)
                for e, codec, exc in bad:
                    log.error("room %s: event %d cannot be encoded as %s (%s); dropped", room.id, e["seq"], codec.value, exc)
                room.drop([e for e, _, _ in bad])
                self.metrics.dropped_events.inc(len(bad))
                self._dirty.add(room)
                return
            self._send(room, out)
        room.flushed_upto(durable)
        room.likes_dirty = False
        room.stock = {}
        if online_due:
            room.online_sent = room.online
            room.online_at = now

    def _send(self, room: Room, out: batch.Outgoing) -> None:
        sent = batch.write(out, room.viewers)
        if out.dropped:
            self.metrics.sampled_out.inc(out.dropped * room.size)
        self.metrics.encodes.inc(out.encodes)
        self.metrics.deliveries.inc(sent)
        self.metrics.batches.inc()

    # -- likes and presence ----------------------------------------------------------------

    def _milestone_draws(self, room_id: str, ids: list[str]) -> None:
        if self.milestones is not None:
            self.spawn(self.milestones.start_draws(room_id, ids))

    def add_likes(self, room_id: str, n: int) -> None:
        room = self.rooms.get(room_id)
        if room is not None:
            room.local_likes += n

    async def _presence_loop(self) -> None:
        interval = self.cfg.room.presence_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self.presence.round(list(self.rooms.values()))
