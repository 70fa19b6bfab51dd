"""Likes: viewers tap many times a second; each hub adds its rooms' taps of a tick to Redis
in one call per room, and viewers get the room total at most once per tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from liveroom.broker.base import Broker
from liveroom.core.room import Room
from liveroom.errors import ReplyError

log = logging.getLogger(__name__)


def seen_total(room: Room, total: int) -> bool:
    """A room total from Redis (a script's reply or a pub/sub message); True if it is news."""
    if total > room.likes:
        room.likes = total
        room.likes_dirty = True
        return True
    return False


async def flush(
    broker: Broker, rooms: Iterable[Room], dirty: Callable[[Room], None], draws: Callable[[str, list[str]], None]
) -> None:
    """Each room's taps since the last flush, added to Redis in one call per room; taps
    that Redis did not take stay for the next flush. `draws`: the milestones a flush
    crossed that start a draw (this hub's change crossed them: it starts them)."""
    todo = [(r, r.local_likes) for r in rooms if r.local_likes]
    for room, n in todo:
        room.local_likes -= n

    async def one(room: Room, n: int) -> None:
        try:
            total, fired = await broker.add_likes(room.id, n)
        except ReplyError:
            room.local_likes += n  # Redis unreachable: keep the taps for the next tick
            raise
        if seen_total(room, total):
            dirty(room)
        if fired:
            draws(room.id, fired)

    results = await asyncio.gather(*(one(r, n) for r, n in todo), return_exceptions=True)
    for res in results:
        if isinstance(res, Exception):
            log.warning("likes flush: %s", res)
