"""Bounded state in Redis: the idle index a room enters when it becomes over, the sweep that
deletes rooms over for room.ttl_s (room_drop.lua), and the orders streams' trim by age."""

from __future__ import annotations

import logging
import time
from typing import Any

from liveroom.broker import keys as K
from liveroom.broker.runner import ScriptRunner
from liveroom.broker.topology import bounded
from liveroom.errors import ReplyError, Unavailable

log = logging.getLogger(__name__)


class ExpiryOps(ScriptRunner):
    async def mark_idle(self, room: str, keep: bool = False) -> None:
        """The room may have become over just now (last viewer gone, sale closed, order
        settled as the reaper saw, draw closed, session ended): its sweep is due room.ttl_s from now. Cheap
        and idempotent; the sweep checks that the room is over before it deletes anything.
        A failure is logged, not raised: the op it follows is done. `keep`: an entry already
        there keeps its time."""
        try:
            await bounded(self._cmd(room).zadd(K.ROOMS_IDLE, {room: int(time.time() * 1000)}, nx=keep), self._timeout)
        except (Unavailable, ReplyError) as exc:
            log.warning("room %s: not marked idle: %s", room, exc)

    async def mark_active(self, room: str) -> None:
        """A room created (or updated) on purpose is kept until it is over again."""
        await bounded(self._cmd(room).zrem(K.ROOMS_IDLE, room), self._timeout)

    async def idle_rooms(self, registry: Any, before_ms: int, count: int) -> list[tuple[str, int]]:
        """(room, mark ms) of the registry's rooms marked idle before `before_ms`."""
        got = await bounded(
            registry.zrangebyscore(K.ROOMS_IDLE, "-inf", before_ms, start=0, num=count, withscores=True), self._timeout
        )
        return [(m.decode(), int(score)) for m, score in got]

    async def idle_settle(self, room: str, seen_ms: int, next_ms: int | None) -> bool:
        """Remove the room's idle entry (next_ms None) or move it to next_ms, only if it is
        still the mark that was read."""
        new = "" if next_ms is None else str(next_ms)
        return bool(await self._run(self.calls.idle_settle(room, seen_ms, new)))

    async def room_drop(self, room: str, sessions_retention_ms: int) -> bool:
        """Delete every key of the room if it is over (True); False: not over, untouched."""
        return bool(await self._run(self.calls.room_drop(room, self.orders_stream_of(room), sessions_retention_ms)))

    def orders_stream_of(self, room: str) -> str | None:
        """The room's own orders stream, if it has one (a cluster), else None."""
        stream: str = self.topology.orders_stream(room)
        return stream if stream != K.SHARD_ORDERS_STREAM else None

    async def sweep_lock(self, registry: Any, ttl_ms: int) -> bool:
        return bool(await bounded(registry.set(K.SWEEP_LOCK, self.hub_id, nx=True, px=ttl_ms), self._timeout))

    async def orders_trim(self, registry: Any, stream: str, oldest_ms: int) -> int:
        """Trim an orders stream (through `registry`: its shard, or the cluster) to entries
        from `oldest_ms` on, keeping whatever a consumer group has not read or not
        acknowledged; how many went."""
        call = self.calls.orders_trim(stream, oldest_ms)
        return int(await bounded(self.scripts[call.script](registry, call.keys, call.args), self._timeout))

    def orders_streams(self, rooms: list[str]) -> list[str]:
        """The orders streams to trim: each shard's one, or (cluster) these rooms' own."""
        if not self.topology.sharded:
            return [K.SHARD_ORDERS_STREAM]
        return [self.topology.orders_stream(r) for r in rooms]
