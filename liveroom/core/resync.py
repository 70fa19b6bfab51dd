"""Keeping a room's events whole when pub/sub or Redis lose some, and the welcome that
starts a viewer off: every viewer gets every durable event after the state it was given.

- A join reads the room's state in one atomic step and waits until the hub has flushed
  everything up to that state's seq; what the hub flushed meanwhile comes from the ring.
- A seq gap (a pub/sub reconnect, a slot move) is filled from the room's history stream:
  one repair at a time per room, covering every open gap, retried with backoff while Redis
  does not answer; the room's later durable events wait meanwhile. A gap history cannot
  fill (trimmed past it, lost with a promoted replica, or Redis away past the bound) ends
  in a fresh `welcome` (`recovered: false`), or `bye` `resync` if even the state is unreadable.
- A seq reused for other content (acked events lost when a lagging replica was promoted)
  is handled as a new epoch: a fresh `welcome` from the state Redis has now, then the
  events Redis has from the first seq it handed out again (acked too, and never seen here).
- A new epoch (the room's Redis data was lost: a shard restarted empty) starts the room
  over: its viewers get a fresh `welcome` and every event of the new epoch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgpack

from liveroom.broker.base import Broker, BrokerMsg, RoomState
from liveroom.config import RoomConfig
from liveroom.core.ports import HubMetrics
from liveroom.core import batch
from liveroom.core.room import REUSED, Event, Room, fingerprint
from liveroom.core.sales import live_sales
from liveroom.errors import Unavailable
from liveroom.protocol.codec import Codec, frame

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 15.0  # how long a read Redis cannot answer is retried (a failover takes seconds)


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (0-based) of a read Redis did not answer: quick at
    first (a reconnect is over in ms), then spaced out (a failover takes seconds)."""
    return min(2.0, 0.1 * 2.0**attempt)


def unrepairable(missing_first: int | None, filled: int, last_read: int) -> bool:
    """After a history read that answered: is a missing seq one history does not have?
    Yes when the read filled nothing, or a seq it should have covered is still missing."""
    if missing_first is None:
        return False
    return filled == 0 or missing_first <= last_read


def first_new_content(prints: dict[int, int], history: list[tuple[Event, int]], first_new: int) -> int:
    """The first seq whose event in Redis's history is not the one this hub had (by
    fingerprint): where the timeline Redis kept parts from the one that was published.
    `first_new`: the seqs from it on are known to be new."""
    for ev, fp in history:
        if ev["seq"] >= first_new:
            break
        if prints.get(ev["seq"], fp) != fp:
            return int(ev["seq"])
    return first_new


def welcome(room: Room, state: RoomState, user: dict[str, str], recovered: bool) -> dict[str, Any]:
    """The `welcome` frame: the state as read (`state.seq` is the seq it covers)."""
    return {
        "t": "welcome",
        "room": room.id,
        "user": user,
        "epoch": state.epoch,
        "seq": state.seq,
        "state": {
            "online": room.online,
            "likes": max(room.likes, state.likes),
            "pinned": state.pinned,
            "sales": live_sales(state.sales),
            "draw": state.draw,  # the open draw's public map (never its seed), or None
            "live": state.live,  # {session, started_at} of the live session, or None
        },
        "recovered": recovered,
    }


class Resync:
    def __init__(
        self,
        cfg: RoomConfig,
        broker: Broker,
        metrics: HubMetrics,
        rooms: dict[str, Room],
        spawn: Callable[[Awaitable[Any]], None],
        dirty: Callable[[Room], None],
        replay: Callable[[str, BrokerMsg], None],
    ) -> None:
        self.cfg = cfg
        self.broker = broker
        self.metrics = metrics
        self.rooms = rooms
        self.spawn = spawn
        self.dirty = dirty  # the room has something to send with the next tick
        self.replay = replay  # a broker message held during a reset, handled again
        self.tick_s = cfg.tick_ms / 1000
        self.retry_s = RETRY_S

    async def settle(self, room: Room, state: RoomState) -> RoomState:
        """A state read that the room's local view agrees with: same epoch (else the room
        is reset first), and every event up to its seq flushed, so that the events after
        it are exactly those in the ring past it and those the next ticks send."""
        for _ in range(3):
            if room.resetting is not None:
                await asyncio.shield(room.resetting)
            elif state.epoch != room.epoch:
                await self.reset(room)
            else:
                break
            state = await self.broker.state(room.id)
        if room.flushed_seq < state.seq:
            # published before the read, not flushed here yet: wait for them (a tick,
            # usually), fetching them from history if they do not come
            wait = 2 * self.tick_s + 0.2
            try:
                await room.flushed_past(state.seq, wait)
            except TimeoutError:
                room.expect(state.seq)
                self.repair_soon(room)
                try:
                    await room.flushed_past(state.seq, wait)
                except TimeoutError:
                    log.warning("room %s: seq %d not flushed in time; a joiner may see it twice", room.id, state.seq)
        return state

    async def backlog(self, room: Room, have: int) -> list[Event]:
        """The flushed events after `have`: from the ring, or history where it does not reach."""
        backlog: list[Event] = []
        for _ in range(3):
            missing = room.from_ring(have)
            if missing is not None:
                return backlog + missing
            more = await self.history(room.id, have, room.flushed_seq)
            backlog.extend(more)
            if more:
                have = more[-1]["seq"]
        return backlog

    async def history(self, room_id: str, after: int, upto: int) -> list[Event]:
        """Durable events after `after`, up to `upto`, as events with their seq."""
        return [ev for ev, _ in await self._read(room_id, after, upto)]

    async def _read(self, room_id: str, after: int, upto: int) -> list[tuple[Event, int]]:
        """History after `after` up to `upto` (at most history_len), with fingerprints."""
        out: list[tuple[Event, int]] = []
        if upto <= after:
            return out
        for seq, body in await self.broker.history(room_id, after, min(upto - after, self.cfg.history_len)):
            if seq > upto:
                break
            ev = msgpack.unpackb(body)
            ev["seq"] = seq
            out.append((ev, fingerprint(body)))
        return out

    def repair_soon(self, room: Room) -> None:
        """Fill the room's missing seqs from history: one repair per room at a time, which
        goes on until no gap is open (gaps opened meanwhile are coalesced into it)."""
        if not room.repairing and room.missing:
            room.repairing = True  # now, not when the task first runs
            self.spawn(self._repair(room))

    async def _repair(self, room: Room) -> None:
        try:
            deadline = time.monotonic() + self.retry_s
            attempt = 0
            while room.missing and room.resetting is None and self.rooms.get(room.id) is room:
                span = room.missing.span()
                assert span is not None
                lo, hi = span
                gen = room.generation
                after = max(lo - 2, 0)  # from one event we had: still the same content?
                try:
                    got = await self._read(room.id, after, hi)
                except Exception as exc:  # whatever failed, the gap stays open: a repair that
                    # died here would hold the room's later events behind it for good
                    if not isinstance(exc, Unavailable):
                        log.warning("room %s: history read failed (%r); retrying", room.id, exc)
                    wait = backoff(attempt)
                    attempt += 1
                    if time.monotonic() + wait > deadline:
                        log.warning("room %s: history unreadable for %.0f s; seqs %d-%d given up", room.id, self.retry_s, lo, hi)
                        await self.reset(room, fresh=True)
                        return
                    await asyncio.sleep(wait)
                    continue
                if room.generation != gen:
                    continue  # the room started over during the read: the result is stale
                before = room.missing.count()
                if room.repaired(got) == REUSED:
                    log.warning("room %s: a seq came back with other content (events lost in Redis)", room.id)
                    await self.lost(room, got[-1][0]["seq"] + 1, room.epoch)
                    return
                self.metrics.repairs.inc()
                self.dirty(room)
                last = got[-1][0]["seq"] if got else after
                if unrepairable(room.missing.first(), before - room.missing.count(), last):
                    log.warning("room %s: seqs from %s not in history (trimmed or lost)", room.id, room.missing.first())
                    await self.reset(room, fresh=True)
                    return
        finally:
            room.repairing = False
        if room.missing and room.resetting is None and self.rooms.get(room.id) is room:
            self.repair_soon(room)  # a gap opened as the last read ended (a reset clears them)

    def recheck_rooms(self, rooms: list[str]) -> None:
        """After a pub/sub reconnect or a slot move: check each room for events published
        meanwhile, and for a new epoch (its data was lost while we were away)."""
        for room_id in rooms:
            room = self.rooms.get(room_id)
            if room is not None and room.ready:
                self.spawn(self.recheck(room))

    async def recheck(self, room: Room) -> None:
        # right after a reconnect the pools' connections may still be the dead ones: a
        # recheck that gave up would leave the last events before it unseen for good
        had = room.high_seq
        state = await self._retrying(lambda: self.broker.state(room.id))
        if state.epoch != room.epoch:
            log.warning("room %s: epoch %s -> %s (found after a reconnect)", room.id, room.epoch, state.epoch)
            await self.reset(room)
        elif state.seq < had:
            # read after we had `had`: Redis lost acked events (a lagging replica promoted)
            log.warning("room %s: Redis is at seq %d, we had %d (events lost)", room.id, state.seq, had)
            await self.lost(room, state.seq + 1, room.epoch)
        elif room.expect(state.seq):
            self.repair_soon(room)  # the repair's read overlaps `had`: checked there
        elif had and had in room.prints:
            got = await self._retrying(lambda: self._read(room.id, had - 1, had))
            if room.repaired(got) == REUSED:
                log.warning("room %s: seq %d has other content now (events lost)", room.id, had)
                await self.lost(room, had + 1, room.epoch)

    async def _retrying(self, read: Callable[[], Awaitable[T]]) -> T:
        """A read that Redis could not answer, tried again with backoff for retry_s: a gap
        that is not filled now is never filled (later events move the room past it)."""
        deadline = time.monotonic() + self.retry_s
        attempt = 0
        while True:
            try:
                return await read()
            except Exception as exc:  # Unavailable, or a surprise of a failing-over cluster
                if not isinstance(exc, Unavailable):
                    log.warning("read failed (%r); retrying", exc)
                wait = backoff(attempt)
                attempt += 1
                if time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(wait)

    async def lost(self, room: Room, first_new: int, epoch: str) -> None:
        """Redis lost acked events of the room and hands their seqs out again (a lagging
        replica promoted) under `epoch`; its events from `first_new` on are new to this hub.
        The room moves to a new epoch in Redis too (room_renew.lua), so that a client
        resuming later from a seq of the lost timeline gets a fresh welcome, not the new
        events after that seq. Viewers here get the fresh welcome and then every event Redis
        has from the first seq it handed out again: those were acked (a host's notice, a
        buyer's comment) and no viewer has seen them."""
        if epoch == room.epoch:  # else the room has started over since
            await self.reset(room, renew=(epoch, first_new))

    async def reset(self, room: Room, fresh: bool = False, renew: tuple[str, int] | None = None) -> None:
        """Start a room over under its new epoch: its Redis data was lost (a shard restarted
        without persistence). Every viewer here gets a fresh `welcome` (`recovered: false`,
        the state as Redis has it now: a sale that was lost is gone) followed by every event
        of the new epoch so far, then the live events: nothing of the new epoch is lost.
        `fresh`: seqs are missing for good (a gap history cannot fill): the welcome alone,
        whose state covers them, then the events after it. `renew`: the epoch to leave in
        Redis first, and the first seq known to be handed out again (see lost). If Redis
        cannot even give the state, the viewers get `bye` `resync` (reconnect) instead."""
        if room.resetting is not None:
            await asyncio.shield(room.resetting)
            return
        room.resetting = asyncio.get_running_loop().create_future()
        try:
            async def read() -> tuple[RoomState, list[tuple[Event, int]]]:
                if renew:  # compare-and-set: safe to retry, and one of several hubs renews
                    had, first_new = renew
                    kept = await self._read(room.id, max(min(room.prints, default=1) - 1, 0), first_new - 1)
                    await self.broker.renew_epoch(room.id, had, first_new_content(room.prints, kept, first_new))
                state = await self.broker.state(room.id)
                return state, [] if fresh else await self._read(room.id, 0, 1 << 62)

            try:
                state, got = await self._retrying(read)
            except Unavailable:
                if not fresh and not renew:
                    raise
                log.warning("room %s: state unreadable; its viewers are sent to reconnect", room.id)
                room.restart(room.epoch, [], seq=room.high_seq)
                for group in room.viewers.values():
                    for v in list(group):
                        v.kick("resync")
                return
            events = [ev for ev, _ in got]
            # a new epoch with no history yet starts at the state read: seq 0 for a shard
            # restarted empty, the seq it was renewed at (room_renew.lua) otherwise
            start = state.seq if fresh or not events else None
            room.restart(state.epoch, events, {ev["seq"]: fp for ev, fp in got}, seq=start)
            self.metrics.resets.inc()
            self.rewelcome(room, state, events)
        finally:
            done, room.resetting = room.resetting, None
            done.set_result(None)
        held, room.held = room.held, []
        for msg in held:
            self.replay(room.id, msg)  # those of the new epoch after the history go out next
        room.wake_joiners()

    def rewelcome(self, room: Room, state: RoomState, events: list[Event]) -> None:
        """The fresh welcome and the new epoch's events for every viewer of a reset room
        (rare: one encode per viewer for the welcome, which names the viewer)."""
        frames: dict[Codec, list[bytes]] = {}
        for (codec, _), viewers in room.viewers.items():
            if codec not in frames:
                frames[codec] = batch.backlog(room.id, batch.visible(events, ""), codec)
            for v in viewers:
                v.send(frame(welcome(room, state, v.session.welcome_user(), False), codec), True)
                for data in frames[codec]:
                    v.send(data, True)

