"""One room as this hub holds it: its viewers, its durable events in seq order (pending,
flushed, the ring of recent ones) under one epoch, and the latest counters.

The seq rules live here as plain methods (accept, repaired, due, flushed, restart): a
message already had is dropped, a gap is reported for repair from history, events reach
viewers in seq order exactly once: while a seq is missing, the events after it wait. A seq
seen again with other content (a replica promoted without it lost acked events, and Redis
handed the seqs out again) is reported as a new epoch. No I/O: the hub does the fetching
and the writing.
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
PRINTS = RING  # (seq, fingerprint) pairs kept per room, to notice a seq reused for other content

Event = dict[str, Any]

GAP = "gap"  # accept: seqs are missing before this one (fetch them from history)
REUSED = "reused"  # accept: a seq already had came again with other content (a new epoch)


def fingerprint(body: bytes) -> int:
    """A cheap per-process content hash of an event body, as published and as in history."""
    return hash(body)


class Missing:
    """Seqs known to exist but not had yet, as sorted, disjoint, inclusive ranges (few: one
    per pub/sub gap), so a gap of 100,000 seqs costs one pair."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def add(self, lo: int, hi: int) -> None:
        """Seqs lo..hi are missing (above every seq already noted)."""
        if lo > hi:
            return
        if self.ranges and self.ranges[-1][1] >= lo - 1:
            self.ranges[-1][1] = max(self.ranges[-1][1], hi)
        else:
            self.ranges.append([lo, hi])

    def __contains__(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.ranges)

    def remove(self, seq: int) -> None:
        for i, (lo, hi) in enumerate(self.ranges):
            if lo <= seq <= hi:
                parts = [p for p in ([lo, seq - 1], [seq + 1, hi]) if p[0] <= p[1]]
                self.ranges[i : i + 1] = parts
                return

    def first(self) -> int | None:
        return self.ranges[0][0] if self.ranges else None

    def span(self) -> tuple[int, int] | None:
        """(lowest, highest) missing seq: one history read covers every gap."""
        return (self.ranges[0][0], self.ranges[-1][1]) if self.ranges else None

    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def clear(self) -> None:
        self.ranges = []


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
    left_epoch: str = ""  # the one before (restart): its late messages are ignored
    high_seq: int = 0  # highest seq received from the broker
    flushed_seq: int = 0  # highest seq handed to viewers
    pending: list[Event] = field(default_factory=list)
    ring: deque[Event] = field(default_factory=lambda: deque(maxlen=RING))
    missing: Missing = field(default_factory=Missing)  # seqs to fetch; later events wait
    prints: dict[int, int] = field(default_factory=dict)  # seq -> fingerprint, the last PRINTS
    repairing: bool = False  # one repair at a time per room; it covers every gap
    generation: int = 0  # bumped when the room starts over: a read begun before is stale
    # the room's Redis data was lost and it restarts under a new epoch: set while the hub
    # re-reads it; broker messages wait in `held` meanwhile
    resetting: asyncio.Future[None] | None = None
    held: list[DurableMsg] = field(default_factory=list)
    flushed: asyncio.Future[None] | None = None  # joiners waiting for flushed_seq to advance
    # latest values, sent once per tick at most
    likes: int = 0
    likes_dirty: bool = False
    local_likes: int = 0  # taps on this hub not yet added to Redis
    # a flush of taps not yet acknowledged (flush id, taps): re-sent as it is until Redis
    # answers, so a flush that timed out but ran is not counted twice (core/likes.py)
    likes_flush: tuple[str, int] | None = None
    likes_busy: bool = False  # a flush of this room is in flight
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

    def accept(self, msg: DurableMsg) -> str | None:
        """Take a durable message of the room's epoch. GAP: seqs before it are missing (fetch
        them from history); REUSED: a seq already had came with other content (start over)."""
        fp = fingerprint(msg.body)
        if msg.seq <= self.high_seq:
            if msg.seq in self.missing and msg.seq > self.flushed_seq:
                self._take(msg.seq, msg.body, fp)
                return None
            if self.prints.get(msg.seq, fp) != fp:
                return REUSED
            return None  # already have it (repaired from history)
        gap = msg.seq > self.high_seq + 1
        self.missing.add(self.high_seq + 1, msg.seq - 1)
        self.high_seq = msg.seq
        self._take(msg.seq, msg.body, fp)
        return GAP if gap else None

    def _take(self, seq: int, body: bytes | Event, fp: int) -> None:
        ev = msgpack.unpackb(body) if isinstance(body, bytes) else body
        ev["seq"] = seq
        self.pending.append(ev)
        self.missing.remove(seq)
        self.note_print(seq, fp)

    def note_print(self, seq: int, fp: int) -> None:
        self.prints[seq] = fp
        if len(self.prints) > PRINTS:
            del self.prints[next(iter(self.prints))]  # the oldest noted

    def expect(self, seq: int) -> bool:
        """Redis says the room is at `seq` (a state read): the seqs past what we had are
        missing until pub/sub or history brings them. True if that opened a gap."""
        if seq <= self.high_seq:
            return False
        self.missing.add(self.high_seq + 1, seq)
        self.high_seq = seq
        return True

    def repaired(self, events: list[tuple[Event, int]]) -> str | None:
        """Events (with fingerprints) read from history for the missing seqs. REUSED if one
        we had differs (the read overlaps by one event to check exactly that)."""
        for ev, fp in events:
            seq = ev["seq"]
            if seq in self.missing and seq > self.flushed_seq:
                self._take(seq, ev, fp)
            elif seq <= self.high_seq and self.prints.get(seq, fp) != fp:
                return REUSED
        return None

    def due(self) -> list[Event]:
        """The durable events to send now, in seq order: none past a missing seq (they wait
        for it, so no viewer gets them out of order)."""
        durable = [e for e in self.pending if e["seq"] > self.flushed_seq]
        hole = self.missing.first()
        if hole is not None:
            durable = [e for e in durable if e["seq"] < hole]
        durable.sort(key=lambda e: e["seq"])
        return durable

    def flushed_upto(self, durable: list[Event]) -> None:
        """`durable` (from `due`) has gone out: what waits past a gap stays, the ring
        remembers what went."""
        if durable:
            self.flushed_seq = durable[-1]["seq"]
            self.ring.extend(durable)
            self.wake_joiners()
        self.pending = [e for e in self.pending if e["seq"] > self.flushed_seq] if self.missing else []

    def drop(self, events: list[Event]) -> None:
        ids = {id(e) for e in events}
        self.pending = [e for e in self.pending if id(e) not in ids]

    def restart(
        self, epoch: str, events: list[Event], prints: dict[int, int] | None = None, seq: int | None = None
    ) -> None:
        """Start over under a new epoch with the events it has so far (or, `seq` given, from
        a state read at `seq` that covers everything before: what a fresh welcome gives)."""
        if epoch != self.epoch:
            self.left_epoch = self.epoch
        self.epoch = epoch
        self.generation += 1
        self.missing.clear()
        self.prints = dict(prints or {})
        self.pending = []  # events of the lost epoch that were not flushed yet
        self.ring.clear()
        self.ring.extend(events)
        self.high_seq = self.flushed_seq = seq if seq is not None else events[-1]["seq"] if events else 0
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
