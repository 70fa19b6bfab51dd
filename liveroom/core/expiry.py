"""Rooms that are over leave Redis: the sweeper every hub runs.

A room enters its shard's idle index (broker `mark_idle`) each time it may have become over:
its last viewer left, a sale closed, the order reaper found its orders settled and its sales
over (it looks at a room by its pay deadlines, not at every confirmation: a confirm costs no
extra write), a draw closed, a live session ended. Each round, one hub per shard (a short lock) takes the rooms
marked at least `room.ttl_s` ago and asks Redis to delete each one whole (`room_drop.lua`),
which it does only if the room is still over: no viewer, no live session, no pending order,
no open sale or draw. A room that is not over is looked at again `ttl_s` later (whatever it
does next marks it again anyway). The cost of a round follows the rooms due, not the rooms
ever seen.
"""

from __future__ import annotations

import asyncio
import logging
import time

from liveroom.broker.base import Broker
from liveroom.config import Config
from liveroom.core.tasks import locked_rounds
from liveroom.errors import Unavailable

log = logging.getLogger(__name__)
SWEEP_BATCH = 500  # rooms dropped per round and shard; more wait for the next round
SWEEP_CONCURRENCY = 50  # room_drop calls in flight at once (each holds the shard well under 1 ms)


def now_ms() -> int:
    return int(time.time() * 1000)


class RoomExpiry:
    def __init__(self, cfg: Config, broker: Broker) -> None:
        self.broker = broker
        self.ttl_ms = int(cfg.room.ttl_s * 1000)
        self.interval = cfg.room.sweep_interval_ms / 1000
        self.retention_ms = int(cfg.sessions.retention_days * 86400 * 1000)

    async def _drop(self, room: str, marked: int, now: int) -> bool:
        try:
            if await self.broker.room_drop(room, self.retention_ms):
                await self.broker.idle_settle(room, marked, None)
                return True
            await self.broker.idle_settle(room, marked, now)  # not over: look again a ttl later
        except Unavailable:
            raise
        except Exception:
            log.exception("room sweeper: room %r failed", room)
        return False

    async def sweep(self, registry: object) -> int:
        """One round over a registry (a shard, or the cluster); how many rooms were deleted.
        The rooms go SWEEP_CONCURRENCY at a time: their calls share the shard's pipeline."""
        now = now_ms()
        due = await self.broker.idle_rooms(registry, now - self.ttl_ms, SWEEP_BATCH)
        dropped = 0
        for i in range(0, len(due), SWEEP_CONCURRENCY):
            done = await asyncio.gather(*(self._drop(room, marked, now) for room, marked in due[i : i + SWEEP_CONCURRENCY]))
            dropped += sum(done)
        if dropped:
            log.info("room sweeper: %d rooms over for %.0f s deleted", dropped, self.ttl_ms / 1000)
        return dropped

    async def sweeper(self) -> None:
        """Every hub runs this; a short lock per shard lets one of them do each round."""
        await locked_rounds("room sweeper", self.interval, self.broker.registries, self.broker.sweep_lock, self.sweep)
