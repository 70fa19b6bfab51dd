"""The hub-wide bound on bytes waiting for viewer sockets (limits.hub_outbox_bytes).

Each socket is bounded on its own (limits.outbox_bytes), but 19,000 sockets each allowed
a megabyte is 19 GB: a crowd of stalled phones could take the hub's memory. So the hub
keeps a running total of what its sockets hold, and past the budget it sends `bye slow` to
the sockets holding the most, until the total is back under nine tenths of the budget.

The fan-out path stays cheap: a socket's share is the write-buffer size `Connection.send`
already reads before each write, and the total moves only when that size changed (a
socket that keeps up holds 0 and costs nothing); the transport's resume_writing (buffer
drained below its low-water mark) and the close update it too. Only sockets holding bytes
are in `heavy`; the sort happens only when the budget is passed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Hashable, Iterable, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

RELIEF = 0.9  # shedding goes on until the total is under this share of the budget


def shed_order(held: Iterable[tuple[K, int]], total: int, target: int) -> list[K]:
    """Which sockets to send away so that `total` falls to `target` or below: the ones
    holding the most bytes first (pure)."""
    out: list[K] = []
    for key, n in sorted(held, key=lambda kv: kv[1], reverse=True):
        if total <= target:
            break
        out.append(key)
        total -= n
    return out


class HubOutbox:
    """The running total of bytes waiting for this hub's sockets, and who holds them."""

    __slots__ = ("limit", "total", "heavy", "_shedding", "_bye")

    def __init__(self, limit: int, bye: Callable[[Any], None] | None = None) -> None:
        self.limit = limit  # 0: no bound
        self.total = 0
        self.heavy: dict[object, int] = {}  # socket -> bytes it held when last seen
        self._shedding = False
        self._bye = bye  # how a socket is sent away (`bye slow`)

    def moved(self, conn: object, n: int) -> None:
        """`conn` holds `n` bytes now (0: drained or closed)."""
        before = self.heavy.pop(conn, 0)
        if n:
            self.heavy[conn] = n
        self.total += n - before
        if self.limit and self.total > self.limit and not self._shedding:
            self._shedding = True
            asyncio.get_running_loop().call_soon(self._shed)

    def _shed(self) -> None:
        """On the next loop iteration (never inside a fan-out loop): the sockets holding
        the most go first."""
        self._shedding = False
        if not self.limit or self.total <= self.limit:
            return
        victims = shed_order(list(self.heavy.items()), self.total, int(self.limit * RELIEF))
        log.warning(
            "outgoing bytes %d over the hub budget %d: %d slowest socket(s) sent away", self.total, self.limit, len(victims)
        )
        for conn in victims:
            if self._bye is not None:
                self._bye(conn)
            self.moved(conn, 0)  # its buffer goes with the socket
