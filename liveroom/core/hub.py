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
from liveroom.core.pacing import Pacing
from liveroom.core.presence import Presence
from liveroom.core.resync import Resync, welcome
from liveroom.core.room import GAP, REUSED, Event, Room
from liveroom.core.rules import CommentSampler
from liveroom.core.soldout import SoldOutBook
from liveroom.core.tasks import Background
from liveroom.protocol import events
from liveroom.protocol.codec import frame

log = logging.getLogger(__name__)

# An unchanged online count is re-sent this rarely (for a viewer whose frame was skipped);
# re-sending it every 2 s was most of what 10,000 idle viewers cost.
ONLINE_REFRESH_S = 30.0
# A changed count goes out with the next batch of the room, or on its own at most this
# often: in a big room the count changes with nearly every tick.
ONLINE_MIN_S = 1.0


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
        self._pacing = Pacing(cfg.room.flush_gap_ms / 1000, self._tick_s, cfg.room.flush_writes_per_s)
        self._viewers = 0  # on this hub, all rooms: what the pacing's gap depends on
        self.sold_out = SoldOutBook(cfg.sales.fast_path_keys)  # sales known sold out (core/soldout.py), kept by the events here
        self.milestones = milestones
        # self._mark, not self._dirty.add: tick() replaces the set, a bound add would go to the old one
        self.presence = Presence(cfg.room, broker, self.spawn, self._mark, self._drop_room, self._milestone_draws)
        self.resync = Resync(cfg.room, broker, metrics, self.rooms, self.spawn, self._mark, self.on_message)
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
        await likes.flush(self.broker, self.rooms.values(), self._mark, self._milestone_draws)
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
            self.sold_out.forget_room(room.id)
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
        self._viewers += 1
        self.metrics.viewers.inc()

    def leave(self, viewer: Viewer, room_id: str) -> None:
        room = self.rooms.get(room_id)
        group = room.viewers.get(viewer.wire) if room is not None else None
        if room is None or group is None or viewer not in group:
            return
        del group[viewer]
        self._viewers -= 1
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
            if msg.remaining > 0:
                self.sold_out.reopen(room_id, msg.sale)  # units back (or a late message): ask Redis again
            self._wake(room)
        elif isinstance(msg, ByeMsg):
            self.send_away(room, msg.user, msg.reason)
        elif isinstance(msg, DurableMsg):
            if room.resetting is not None:
                room.held.append(msg)  # replayed once the room is re-read
            elif msg.epoch == room.left_epoch:
                pass  # late, of the epoch the room left: the state read under the new one has it
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
                    self.spawn(self.resync.lost(room, msg.seq, msg.epoch))
                if self.sold_out.watching(room_id) and room.pending and room.pending[-1]["seq"] == msg.seq:
                    ev = room.pending[-1]
                    if ev["type"] == "sale":  # closed or changed: Redis answers for it again
                        self.sold_out.reopen(room_id, ev["sale"]["id"])
                self._wake(room)
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
            self.spawn(likes.flush(self.broker, list(self.rooms.values()), self._mark, self._milestone_draws))
        if not self._stopping:
            self.presence.tick()
        now = time.monotonic()
        for room in self.rooms.values():
            if now - room.online_at >= ONLINE_REFRESH_S:
                self._dirty.add(room)  # the unchanged count, re-sent every ONLINE_REFRESH_S
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        gap = self._pacing.gap(self._viewers)
        for room in dirty:
            if room.pacer.planned:
                self._dirty.add(room)  # its own flush is planned
                continue
            delay = room.pacer.plan(now, gap)  # never None: no flush of it is planned
            if delay:  # its last batch was too recent: it goes out when the gap has passed
                self._dirty.add(room)
                self._schedule(room, delay)
                continue
            self._flush_now(room, now)

    def _mark(self, room: Room) -> None:
        """The room has something for its viewers with the next tick (counters)."""
        self._dirty.add(room)

    def _wake(self, room: Room) -> None:
        """An event that viewers should see soon (core/pacing.py): the room's batch goes out
        at once if its last one is `gap` old, else when it is; a burst plans one flush."""
        self._dirty.add(room)
        delay = room.pacer.plan(time.monotonic(), self._pacing.gap(self._viewers))
        if delay is not None:
            self._schedule(room, delay)

    def _schedule(self, room: Room, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if delay <= 0:
            loop.call_soon(self._planned, room)  # after the rest of this read's messages
        else:
            loop.call_later(delay, self._planned, room)

    def _planned(self, room: Room) -> None:
        now = time.monotonic()
        if room not in self._dirty or self.rooms.get(room.id) is not room:
            room.pacer.cancel()  # sent by a tick meanwhile: the tick takes it
            return
        self._dirty.discard(room)
        self._flush_now(room, now)

    def _flush_now(self, room: Room, now: float) -> None:
        try:
            sent = self._flush(room, now)
        except Exception:  # one room's failure never holds up the others
            log.exception("room %s: flush failed", room.id)
            sent = False
        if sent:
            # the gap counts from the end of the writes: a hub slower than the gap (a busy
            # core) batches more, as the tick did, instead of flushing each event at once
            room.pacer.flushed(time.monotonic())
        else:
            room.pacer.cancel()

    def _flush(self, room: Room, now: float) -> bool:
        """Send the room's batch; False when there was nothing to send."""
        durable = room.due()
        ephemeral: list[Event] = []
        if room.likes_dirty:
            ephemeral.append(events.likes(room.likes))
        stock = [events.stock(s, n) for s, n in room.stock.items()]
        # a changed count rides along with any batch; alone, it waits ONLINE_MIN_S
        changed = room.online != room.online_sent
        since = now - room.online_at
        online_due = (
            since >= ONLINE_REFRESH_S or (changed and (since >= ONLINE_MIN_S or durable or ephemeral or stock))
        )
        if online_due:
            ephemeral.append(events.online(room.online))
        elif changed:
            self._dirty.add(room)  # the tick looks again
        ephemeral.extend(stock)
        sent = False
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
                return False
            self._send(room, out)
            sent = True
        room.flushed_upto(durable)
        room.likes_dirty = False
        room.stock = {}
        if online_due:
            room.online_sent = room.online
            room.online_at = now
        return sent

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
