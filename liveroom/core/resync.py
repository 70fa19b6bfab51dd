"""Keeping a room's events whole when pub/sub or Redis lose some, and the welcome that
starts a viewer off: every viewer gets every durable event after the state it was given.

- A join reads the room's state in one atomic step and waits until the hub has flushed
  everything up to that state's seq; what the hub flushed meanwhile comes from the ring.
- A seq gap (a pub/sub reconnect, a slot move) is filled from the room's history stream.
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
from liveroom.core.room import Event, Room
from liveroom.core.sales import live_sales
from liveroom.errors import Unavailable
from liveroom.protocol.codec import Codec, frame

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_ATTEMPTS = 20  # reads Redis could not answer (after a reconnect, an epoch change), 0.5 s apart


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
                if room.high_seq < state.seq:
                    await self.repair(room, room.high_seq, state.seq + 1)
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
        out: list[Event] = []
        if upto <= after:
            return out
        for seq, body in await self.broker.history(room_id, after, min(upto - after, self.cfg.history_len)):
            if seq > upto:
                break
            ev = msgpack.unpackb(body)
            ev["seq"] = seq
            out.append(ev)
        return out

    async def repair(self, room: Room, after: int, upto: int) -> None:
        """Fetch durable events a pub/sub gap made us miss, holding the room meanwhile."""
        async def fetch() -> list[Event]:
            room.repair_until = time.monotonic() + 1.0  # held while we try (Redis came back)
            return await self.history(room.id, after, upto - 1)

        try:
            got = await self._retrying(fetch)
        finally:
            room.repair_until = 0.0
        room.repaired(got, after, upto)
        self.metrics.repairs.inc()
        self.dirty(room)

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
        state = await self._retrying(lambda: self.broker.state(room.id))
        if state.epoch != room.epoch:
            log.warning("room %s: epoch %s -> %s (found after a reconnect)", room.id, room.epoch, state.epoch)
            await self.reset(room)
        elif state.seq > room.high_seq:
            await self.repair(room, room.high_seq, state.seq + 1)

    async def _retrying(self, read: Callable[[], Awaitable[T]]) -> T:
        """A read that Redis could not answer, tried again for a few seconds: a gap
        that is not filled now is never filled (later events move the room past it)."""
        for attempt in range(RETRY_ATTEMPTS):
            try:
                return await read()
            except Unavailable:
                if attempt == RETRY_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def reset(self, room: Room) -> None:
        """Start a room over under its new epoch: its Redis data was lost (a shard restarted
        without persistence). Every viewer here gets a fresh `welcome` (`recovered: false`,
        the state as Redis has it now: a sale that was lost is gone) followed by every event
        of the new epoch so far, then the live events: nothing of the new epoch is lost."""
        if room.resetting is not None:
            await asyncio.shield(room.resetting)
            return
        room.resetting = asyncio.get_running_loop().create_future()
        try:
            async def read() -> tuple[RoomState, list[Event]]:
                return await self.broker.state(room.id), await self.history(room.id, 0, 1 << 62)

            state, events = await self._retrying(read)
            room.restart(state.epoch, events)
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

