"""Who is in a room, over all hubs: this hub's share of the online count in Redis.

A hub collects the users who came or went in a room and sends them once per tick in one
`presence_sync` call (a crowd joining or dropping at once is one call, not thousands).
Whether a user came or went is read from the room's own state when the call is made, and a
call that fails is retried with the next tick (the script is idempotent), so a Redis stall
delays the count but never leaves it wrong. Every `presence_interval_ms` a beat keeps this
hub alive in each room, reaps dead hubs' users, and re-registers this hub's users when
Redis lost them (a shard restarted empty, or other hubs took this one for dead).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from liveroom.broker.base import Broker
from liveroom.config import RoomConfig
from liveroom.core.room import Room
from liveroom.errors import ReplyError

log = logging.getLogger(__name__)

EMPTY_GRACE_S = 5.0  # keep a room subscribed this long after its last viewer leaves
ROUND_CHUNK = 512  # presence beats in flight at once: one pipelined write per shard each


class Presence:
    def __init__(
        self,
        cfg: RoomConfig,
        broker: Broker,
        spawn: Callable[[Awaitable[Any]], None],
        dirty: Callable[[Room], None],
        drop_room: Callable[[Room], Awaitable[None]],
        draws: Callable[[str, list[str]], None],
    ) -> None:
        self.cfg = cfg
        self.broker = broker
        self._spawn = spawn
        self._dirty = dirty  # the room has something to send with the next tick
        self._drop_room = drop_room  # an empty room past its grace: unsubscribe, forget
        self._draws = draws  # milestones a beat found crossed that start a draw
        self._todo: set[Room] = set()

    def arrived(self, room: Room, user: str, name: str = "") -> bool:
        """Count one more connection of `user`; True when it is the user's first here.
        `name` goes to Redis with the arrival (an online draw's winners are shown by name)."""
        first = room.users[user] == 0
        room.users[user] += 1
        if first:
            self._changed(room, user)
            if name and not user.startswith("anon:"):
                room.names[user] = name
        room.empty_since = None
        return first

    def left(self, room: Room, user: str) -> None:
        room.users[user] -= 1
        if room.users[user] <= 0:
            del room.users[user]
            self._changed(room, user)
        if not room.users:
            room.empty_since = time.monotonic()

    def _changed(self, room: Room, user: str) -> None:
        room.changed.add(user)
        self._todo.add(room)

    def tick(self) -> None:
        """One presence_sync per room with changes, never two of a room in flight."""
        if not self._todo:
            return
        todo, self._todo = self._todo, set()
        for room in todo:
            if room.syncing:
                self._todo.add(room)
            elif room.changed:
                room.syncing = True  # now, not when the task first runs
                self._spawn(self._sync(room))

    async def _sync(self, room: Room) -> None:
        changed, room.changed = room.changed, set()
        names, room.names = room.names, {}
        arrived = [u for u in changed if u in room.users]
        gone = [u for u in changed if u not in room.users]
        try:
            online = await self.broker.presence_sync(
                room.id, arrived, gone, self.cfg.hub_ttl_ms, {u: names[u] for u in arrived if u in names}
            )
        except BaseException:
            room.changed |= changed
            room.names = {**names, **room.names}
            self._todo.add(room)
            raise
        finally:
            room.syncing = False
        room.online = online
        self._dirty(room)

    async def round(self, rooms: list[Room]) -> None:
        """The beat of every room, ROUND_CHUNK at a time concurrently: the beats of one
        chunk leave for each shard as one pipelined write (not one round trip per room, and
        one slow shard does not hold up the others). One room's failure never stops it."""
        now = time.monotonic()
        for i in range(0, len(rooms), ROUND_CHUNK):
            await asyncio.gather(*(self._beat_logged(room, now) for room in rooms[i : i + ROUND_CHUNK]))

    async def _beat_logged(self, room: Room, now: float) -> None:
        try:
            await self._beat(room, now)
        except ReplyError as exc:  # Redis could not do it: next round
            log.warning("presence %s: %s", room.id, exc)
        except Exception:
            log.exception("presence %s failed", room.id)

    async def _beat(self, room: Room, now: float) -> None:
        if (
            room.empty_since is not None
            and now - room.empty_since > EMPTY_GRACE_S
            and not room.users
            and not room.changed  # departures still to reach Redis
            and not room.syncing
        ):
            await self._drop_room(room)
            return
        if not room.ready:
            return
        # how many users Redis should list for this hub, when nothing is in flight
        expect = -1 if room.syncing or room.changed else len(room.users)
        beat = await self.broker.presence_beat(room.id, self.cfg.hub_ttl_ms, expect)
        online = beat.online
        if beat.draws:
            self._draws(room.id, beat.draws)
        if beat.lost:
            log.warning("room %s: presence lost in Redis; registering %d users again", room.id, len(room.users))
            await self.broker.presence_reap(room.id, self.broker.hub_id)  # whatever is left of it
            room.changed.update(room.users)
            self._todo.add(room)
        for hub_id in beat.dead:
            log.info("room %s: reaping dead hub %s", room.id, hub_id)
            # only if still dead: a hub frozen past hub_ttl_ms may have beaten again since
            online = await self.broker.presence_reap(room.id, hub_id, only_dead=True)
        room.online = online
        self._dirty(room)  # sent with the next tick if it changed
