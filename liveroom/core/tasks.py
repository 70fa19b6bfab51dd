"""Background work the hub starts and does not await (a presence sync, a gap repair, a
likes flush): each task is kept until it ends, and its failure is logged, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from liveroom.errors import Unavailable

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def settle(self, timeout: float) -> None:
        """Let what is in flight land (at shutdown), for at most `timeout` seconds."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, Unavailable):  # Redis did not answer: worth a line, not a trace
                log.warning("background task: %s", exc)
            else:
                log.error("background task failed", exc_info=exc)


async def locked_rounds(
    what: str,
    interval: float,
    registries: Callable[[], Iterable[Any]],
    lock: Callable[[Any, int], Awaitable[bool]],
    round_: Callable[[Any], Awaitable[Any]],
) -> None:
    """Every `interval` s, a round on each shard (registry) by the one hub that takes its
    short lock (every hub runs this: the order reaper, the room sweeper). One round's
    failure is logged and never ends the loop."""
    ttl_ms = max(int(interval * 900), 100)
    while True:
        await asyncio.sleep(interval)
        for registry in registries():
            try:
                if await lock(registry, ttl_ms):
                    await round_(registry)
            except Unavailable as exc:
                log.warning("%s: %s", what, exc)
            except Exception:
                log.exception("%s failed", what)
