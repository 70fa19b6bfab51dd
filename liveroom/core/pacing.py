"""When a room's batch goes out: at once after a quiet spell, batched when busy.

A fixed tick made every event of a quiet room wait up to `tick_ms` (100 ms). The rule here:
a room's batch may go out as soon as `gap` has passed since its last one, where

    gap = clamp(hub viewers / writes_per_s, min_gap, tick)

So the first event after a quiet spell goes out at once, the ones that follow within `gap`
are batched into the next frame, and:

- a viewer never gets more than 1/min_gap frames a second from a room, whatever the event
  rate (the per-viewer frame rate stays bounded);
- the early flushes of all rooms together cost at most about `writes_per_s` socket writes
  a second (each room's writes per second are its viewers / gap, and the gaps grow with
  the hub's viewers), so a busy hub falls back to one batch per tick, as before, and its
  deliveries per CPU-second do not fall;
- a batch is still encoded once and the same bytes written to every socket.

Sans-I/O: times and counts in, decisions out; the hub owns the timers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pacing:
    """The hub-wide rule (from RoomConfig)."""

    min_gap: float  # seconds between two batches of a room, at least
    tick: float  # ... and at most (a batch per tick, the old rule)
    writes_per_s: float  # socket writes a second the early flushes may cost, hub-wide; 0: no early flush

    def gap(self, hub_viewers: int) -> float:
        """The least time between two batches of a room on a hub holding `hub_viewers`."""
        if self.writes_per_s <= 0:
            return self.tick
        return min(self.tick, max(self.min_gap, hub_viewers / self.writes_per_s))


class RoomPacer:
    """One room's side of the rule: when its last batch went out, and whether a flush is
    already planned (so a burst of events plans one flush, not one each)."""

    __slots__ = ("last", "planned")

    def __init__(self) -> None:
        self.last = float("-inf")
        self.planned = False

    def plan(self, now: float, gap: float) -> float | None:
        """Something arrived for the room at `now`: in how many seconds its batch should go
        out (0: now), or None when a flush is already planned."""
        if self.planned:
            return None
        self.planned = True
        return max(0.0, self.last + gap - now)

    def flushed(self, now: float) -> None:
        """The planned flush ran (or the room's batch went out another way) at `now`."""
        self.planned = False
        self.last = now

    def cancel(self) -> None:
        """The planned flush ran but sent nothing (the room was held): plan afresh."""
        self.planned = False
