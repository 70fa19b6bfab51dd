"""One room as this hub holds it: its viewers, its durable events in seq order (pending,
flushed, the ring of recent ones) under one epoch, and the latest counters.

The seq rules live here as plain methods (accept, repaired, due, flushed, restart): a
message already had is dropped, a gap is reported for repair from history, events reach
viewers in seq order exactly once. No I/O: the hub does the fetching and the writing.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import msgpack

from liveroom.broker.base import DurableMsg
from liveroom.core.pacing import RoomPacer
from liveroom.core.ports import Viewer, Wire
from liveroom.core.rules import CommentSampler

RING = 512  # recent durable events kept in memory per room, to sync late joiners exactly

Event = dict[str, Any]


@dataclass(eq=False)
class Room:
    id: str
    sampler: CommentSampler
    viewers: dict[Wire, dict[Viewer, None]] = field(default_factory=dict)
    users: Counter[str] = field(default_factory=Counter)
    ready: bool = False  # subscribed and initialised from Redis
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    empty_since: float | None = None
    # durable events
    epoch: str = ""
    high_seq: int = 0  # highest seq received from the broker
    flushed_seq: int = 0  # highest seq handed to viewers
    pending: list[Event] = field(default_factory=list)
    ring: deque[Event] = field(default_factory=lambda: deque(maxlen=RING))
    repair_until: float = 0.0  # hold durable events while a seq gap is fetched
    # the room's Redis data was lost and it restarts under a new epoch: set while the hub
    # re-reads it; broker messages wait in `held` meanwhile
    resetting: asyncio.Future[None] | None = None
    held: list[DurableMsg] = field(default_factory=list)
    flushed: asyncio.Future[None] | None = None  # joiners waiting for flushed_seq to advance
    # latest values, sent once per tick at most
    likes: int = 0
    likes_dirty: bool = False
    local_likes: int = 0  # taps on this hub not yet added to Redis
    online: int = 0  # latest count from Redis
    online_sent: int = -1  # what viewers were last sent, and when
    online_at: float = 0.0
    stock: dict[str, int] = field(default_factory=dict)  # sale -> latest remaining, unsent
    # presence: users who came or went, not yet in Redis; a presence_sync in flight
    changed: set[str] = field(default_factory=set)
    syncing: bool = False
    # display names of users who arrived, until the next presence_sync writes them to the
    # room's names hash (winners of an `online` draw are shown by name): transient
    names: dict[str, str] = field(default_factory=dict)
    pacer: RoomPacer = field(default_factory=RoomPacer)  # when its next batch may go out (core/pacing.py)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.viewers.values())

    def start(self, epoch: str, seq: int, likes: int, online: int) -> None:
        self.epoch = epoch
        self.high_seq = self.flushed_seq = seq
        self.likes, self.online = likes, online
        self.ready = True

    def accept(self, msg: DurableMsg) -> tuple[int, int] | None:
        """Take a durable message of the room's epoch; the (after, upto) seq gap to fetch
        from history if messages were missed before it."""
        if msg.seq <= self.high_seq:
            return None  # already have it (repaired from history)
        gap = (self.high_seq, msg.seq) if msg.seq > self.high_seq + 1 else None
        self.high_seq = msg.seq
        ev = msgpack.unpackb(msg.body)
        ev["seq"] = msg.seq
        self.pending.append(ev)
        return gap

    def repaired(self, events: list[Event], after: int, upto: int) -> None:
        """Events fetched from history for the gap (after, upto)."""
        have = {e["seq"] for e in self.pending}
        for ev in events:
            seq = ev["seq"]
            if after < seq < upto and seq not in have and seq > self.flushed_seq:
                self.pending.append(ev)
                self.high_seq = max(self.high_seq, seq)

    def due(self) -> list[Event]:
        """The durable events to send now, in seq order."""
        durable = [e for e in self.pending if e["seq"] > self.flushed_seq]
        durable.sort(key=lambda e: e["seq"])
        return durable

    def flushed_upto(self, durable: list[Event]) -> None:
        """`durable` (from `due`) has gone out: nothing pends, the ring remembers it."""
        self.pending = []
        if durable:
            self.flushed_seq = durable[-1]["seq"]
            self.ring.extend(durable)
            self.wake_joiners()

    def drop(self, events: list[Event]) -> None:
        ids = {id(e) for e in events}
        self.pending = [e for e in self.pending if id(e) not in ids]

    def restart(self, epoch: str, events: list[Event]) -> None:
        """Start over under a new epoch with the events it has so far."""
        self.epoch = epoch
        self.pending = []  # events of the lost epoch that were not flushed yet
        self.ring.clear()
        self.ring.extend(events)
        self.high_seq = self.flushed_seq = events[-1]["seq"] if events else 0
        self.stock = {}

    def from_ring(self, have: int) -> list[Event] | None:
        """The flushed events after `have`, or None when the ring does not reach back."""
        if have >= self.flushed_seq:
            return []
        if not self.ring or self.ring[0]["seq"] > have + 1:
            return None
        return [e for e in self.ring if have < e["seq"] <= self.flushed_seq]

    def wake_joiners(self) -> None:
        if self.flushed is not None:
            self.flushed.set_result(None)
            self.flushed = None

    async def flushed_past(self, seq: int, timeout: float) -> None:
        """Wait until the events up to `seq` have gone out (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while self.flushed_seq < seq:
                if self.flushed is None:
                    self.flushed = asyncio.get_running_loop().create_future()
                await asyncio.shield(self.flushed)
