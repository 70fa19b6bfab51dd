"""Likes: viewers tap many times a second; each hub adds its rooms' taps of a tick to Redis
in one call per room, and viewers get the room total at most once per tick."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable, Iterable

from liveroom.broker.base import Broker
from liveroom.core.room import Room

log = logging.getLogger(__name__)


def seen_total(room: Room, total: int) -> bool:
    """A room total from Redis (a script's reply or a pub/sub message); True if it is news."""
    if total > room.likes:
        room.likes = total
        room.likes_dirty = True
        return True
    return False


_PROCESS = secrets.token_hex(4)  # flush ids are unique to this process ...
_FLUSHES = itertools.count(1)  # ... and to each flush


def next_flush(room: Room) -> bool:
    """The flush to send for `room` now, if any: the unacknowledged one again (same id,
    same taps: room_like.lua ignores an id it has already counted), else the taps gathered
    since, under a new id. False while one is in flight or there is nothing to send."""
    if room.likes_busy:
        return False
    if room.likes_flush is None:
        if not room.local_likes:
            return False
        room.likes_flush = (f"{_PROCESS}.{next(_FLUSHES)}", room.local_likes)
        room.local_likes = 0
    return True


async def flush(
    broker: Broker, rooms: Iterable[Room], dirty: Callable[[Room], None], draws: Callable[[str, list[str]], None]
) -> None:
    """Each room's taps since the last flush, added to Redis in one call per room. A flush
    Redis did not answer (timed out: it may or may not have run) is sent again with the same
    id until it is answered, so its taps count once; new taps wait for the next one. `draws`:
    the milestones a flush crossed that start a draw (this hub's change crossed them: it
    starts them)."""
    todo = [r for r in rooms if next_flush(r)]

    async def one(room: Room) -> None:
        assert room.likes_flush is not None
        fid, n = room.likes_flush
        room.likes_busy = True
        try:
            total, fired = await broker.add_likes(room.id, n, fid)
        finally:
            room.likes_busy = False
        room.likes_flush = None
        if seen_total(room, total):
            dirty(room)
        if fired:
            draws(room.id, fired)

    results = await asyncio.gather(*(one(r) for r in todo), return_exceptions=True)
    for res in results:
        if isinstance(res, Exception):
            log.warning("likes flush: %s", res)
