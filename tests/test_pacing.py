"""When a room's batch goes out (core/pacing.py): at once when quiet, batched when busy,
never more often than the gap; and, on a real hub, a quiet room's comments do not wait for
the tick while a burst still goes out in few frames."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

from liveroom.core.pacing import Pacing, RoomPacer
from tests.support import Client, token

PACING = Pacing(min_gap=0.020, tick=0.100, writes_per_s=50_000)


def simulate(arrivals: list[float], gap: float) -> list[tuple[float, int]]:
    """Flush times and how many events each carried, as the hub drives a RoomPacer:
    an arrival plans a flush (if none is planned) `plan()` seconds later."""
    pacer = RoomPacer()
    flushes: list[tuple[float, int]] = []
    waiting = 0
    due: float | None = None
    for t in sorted(arrivals) + [float("inf")]:
        while due is not None and due <= t:
            pacer.flushed(due)
            flushes.append((due, waiting))
            waiting, due = 0, None
        if t == float("inf"):
            break
        waiting += 1
        delay = pacer.plan(t, gap)
        if delay is not None:
            due = t + delay
    return flushes


def test_gap_grows_with_the_hub_and_stays_between_min_gap_and_tick() -> None:
    assert PACING.gap(0) == 0.020
    assert PACING.gap(1_000) == 0.020  # 1,000 / 50,000 = 20 ms
    assert PACING.gap(2_500) == 0.050
    assert PACING.gap(10_000) == 0.100  # a busy hub: one batch per tick, as before
    assert PACING.gap(1_000_000) == 0.100
    assert Pacing(0.020, 0.100, 0).gap(10) == 0.100  # early flushes off


def test_first_event_after_a_quiet_spell_goes_out_at_once() -> None:
    pacer = RoomPacer()
    assert pacer.plan(10.0, 0.02) == 0.0
    assert pacer.plan(10.001, 0.02) is None  # one flush planned for the burst
    pacer.flushed(10.0)
    assert pacer.plan(10.5, 0.02) == 0.0  # quiet again
    pacer.flushed(10.5)
    delay = pacer.plan(10.505, 0.02)  # 5 ms after the last batch: waits the rest of the gap
    assert delay is not None and abs(delay - 0.015) < 1e-9


def test_a_burst_is_batched_and_frames_stay_bounded_whatever_the_rate() -> None:
    for rate in (10, 100, 1_000, 10_000):
        arrivals = [i / rate for i in range(rate * 2)]  # two seconds
        for gap in (0.02, 0.05, 0.1):
            flushes = simulate(arrivals, gap)
            assert sum(n for _, n in flushes) == len(arrivals)  # every event goes out once
            times = [t for t, _ in flushes]
            assert all(b - a >= gap - 1e-9 for a, b in zip(times, times[1:]))
            assert len(flushes) <= 2 / gap + 1
    # quiet: each comment alone and at once
    flushes = simulate([0.0, 0.5, 1.0], 0.1)
    assert flushes == [(0.0, 1), (0.5, 1), (1.0, 1)]


def test_cancel_lets_the_next_event_plan_again() -> None:
    pacer = RoomPacer()
    assert pacer.plan(1.0, 0.1) == 0.0
    pacer.cancel()  # the planned flush found the room held (a repair): nothing went out
    assert pacer.plan(1.01, 0.1) == 0.0


async def test_quiet_room_comments_do_not_wait_for_the_tick(app_hub: Callable[..., Awaitable[Any]]) -> None:
    """With a 5 s tick, three comments one after another reach a viewer in far less than
    one tick each (before: each waited for the next tick), and a burst of 20 comments
    sent together still arrives in a few frames."""
    hub = await app_hub(LIVEROOM_TICK_MS="5000", LIVEROOM_FLUSH_GAP_MS="1000", LIVEROOM_COMMENT_RATE="0",
                        LIVEROOM_FRAME_RATE="0", LIVEROOM_VIEWER_COMMENT_CAP="0")  # fmt: skip
    room = "pace" + uuid.uuid4().hex[:8]
    viewer = await Client.connect(hub.base, room, token("viewer"))
    sender = await Client.connect(hub.base, room, token("sender"))
    try:
        for n in range(3):
            await asyncio.sleep(1.1)  # a quiet spell longer than the gap
            r = await sender.call("comment", text=f"quiet {n}")
            assert r["ok"], r
            # well within one 5 s tick (timeouts are scaled on slow machines, up to 2x)
            await viewer.wait_for(lambda n=n: len(viewer.of_type("comment")) == n + 1, timeout=1.0, what=f"comment {n}")
        await asyncio.sleep(1.1)
        frames0 = len(viewer.frames)
        replies = await asyncio.gather(*(sender.call("comment", text=f"burst {i}") for i in range(20)))
        assert all(r["ok"] for r in replies)
        await viewer.wait_for(lambda: len(viewer.of_type("comment")) == 23, timeout=8.0, what="the burst")
        frames = [f for f in viewer.frames[frames0:] if f["t"] == "batch"]
        assert len(frames) <= 3, [len(f["events"]) for f in frames]  # at once, then batched
        seqs = [e["seq"] for e in viewer.of_type("comment")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        await viewer.close()
        await sender.close()
