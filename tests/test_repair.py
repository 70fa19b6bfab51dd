"""Gap repair and seq reuse as plain values: the room's seq rules (core/room.py), and the
repair loop (core/resync.py) driven by a history that fails, answers late or lacks seqs."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import msgpack

from liveroom.broker.base import Broker, DurableMsg, RoomState
from liveroom.config import RoomConfig
from liveroom.core.resync import Resync, backoff, first_new_content, unrepairable
from liveroom.core.room import GAP, REUSED, Missing, Room, fingerprint
from liveroom.core.rules import CommentSampler
from liveroom.errors import Unavailable
from liveroom.metrics import Metrics
from liveroom.protocol.codec import Codec


def body(text: str) -> bytes:
    return msgpack.packb({"type": "notice", "text": text})


def msg(seq: int, text: str | None = None) -> DurableMsg:
    return DurableMsg(seq, "e1", body(text or f"n{seq}"))


def room_at(seq: int) -> Room:
    room = Room("r", CommentSampler(0, 100))
    room.start("e1", seq, 0, 0)
    return room


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


def flush(room: Room) -> list[int]:
    due = room.due()
    room.flushed_upto(due)
    return seqs(due)


def test_missing_ranges() -> None:
    m = Missing()
    m.add(3, 5)
    m.add(6, 6)  # adjacent: one range
    m.add(9, 10)
    assert m.ranges == [[3, 6], [9, 10]] and m.count() == 6 and 4 in m and 7 not in m
    m.remove(4)
    assert m.ranges == [[3, 3], [5, 6], [9, 10]] and m.first() == 3 and m.span() == (3, 10)
    for s in (3, 5, 6, 9, 10):
        m.remove(s)
    assert not m and m.span() is None


def test_events_after_a_gap_wait_for_it() -> None:
    room = room_at(10)
    assert room.accept(msg(11)) is None
    assert room.accept(msg(14)) == GAP
    assert room.accept(msg(15)) is None
    assert flush(room) == [11]  # 14 and 15 wait: 12 and 13 are missing
    assert flush(room) == [] and room.flushed_seq == 11
    room.repaired([({"type": "notice", "text": "n12", "seq": 12}, fingerprint(body("n12")))])
    assert flush(room) == [12]  # 13 still missing
    room.repaired([({"type": "notice", "text": "n13", "seq": 13}, fingerprint(body("n13")))])
    assert flush(room) == [13, 14, 15] and not room.missing


def test_late_results_merge_exactly_once() -> None:
    """A repair's result that arrives after pub/sub brought some of the same seqs (and newer
    ones): every event goes out once, in seq order."""
    room = room_at(10)
    room.accept(msg(13))  # 11, 12 missing
    room.accept(msg(11))  # pub/sub delivers late (a resubscribe): fills 11
    room.accept(msg(14))
    assert flush(room) == [11]
    got = [({"type": "notice", "text": f"n{s}", "seq": s}, fingerprint(body(f"n{s}"))) for s in (11, 12, 13)]
    assert room.repaired(got) is None
    assert flush(room) == [12, 13, 14]
    assert room.repaired(got) is None and flush(room) == []  # the same result again: nothing


def test_state_read_ahead_opens_a_tail_gap() -> None:
    room = room_at(10)
    assert room.expect(12) and room.high_seq == 12 and 11 in room.missing
    assert not room.expect(12)
    room.accept(msg(12))  # the message comes after all
    room.accept(msg(11))
    assert flush(room) == [11, 12]


def test_a_seq_reused_with_other_content_is_noticed() -> None:
    room = room_at(10)
    room.accept(msg(11, "before the failover"))
    flush(room)
    assert room.accept(msg(11, "before the failover")) is None  # a plain duplicate
    assert room.accept(msg(11, "after the failover")) == REUSED
    other = ({"type": "notice", "text": "x", "seq": 11}, fingerprint(body("x")))
    assert room.repaired([other]) == REUSED  # a repair's overlap read shows it too


def test_restart_from_a_state_read() -> None:
    room = room_at(10)
    room.accept(msg(14))
    gen = room.generation
    room.restart("e1", [], seq=20)
    assert room.flushed_seq == room.high_seq == 20 and not room.missing and room.generation == gen + 1
    assert room.accept(msg(21)) is None and flush(room) == [21]


def test_backoff_and_unrepairable() -> None:
    assert [backoff(a) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert not unrepairable(None, 0, 5)  # nothing missing
    assert unrepairable(3, 0, 2)  # the read filled nothing
    assert unrepairable(3, 2, 7)  # a seq inside what history returned is still missing
    assert not unrepairable(9, 2, 7)  # more to read past a long gap


class History:
    """A room's history as a broker answers it: fails `fail` times, then answers, each read
    taking `delay` s; `gone` seqs were trimmed."""

    def __init__(
        self, upto: int, fail: int = 0, delay: float = 0.0, gone: set[int] | None = None, error: type[Exception] = Unavailable
    ) -> None:
        self.upto, self.fail, self.delay, self.gone, self.error = upto, fail, delay, gone or set(), error
        self.reads = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def history(self, room: str, after: int, count: int) -> list[tuple[int, bytes]]:
        self.reads += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                self.fail -= 1
                raise self.error("down")
            got = [(s, body(f"n{s}")) for s in range(after + 1, self.upto + 1) if s not in self.gone]
            return got[:count]
        finally:
            self.in_flight -= 1

    async def state(self, room: str) -> RoomState:
        return RoomState(seq=self.upto, epoch="e1", first_seq=1, online=0, likes=0, comments=0, peak=0, pinned=None, sales=[])


class Who:
    def welcome_user(self) -> dict[str, str]:
        return {"id": "u"}


class Sink:
    """A viewer that keeps the frames it is sent (small, unmasked), and its bye."""

    def __init__(self) -> None:
        self.user_id = "u"
        self.session = Who()
        self.codec = Codec.MSGPACK
        self.wire = (Codec.MSGPACK, 0)
        self.got: list[dict[str, Any]] = []

    def send(self, data: bytes, essential: bool, comments: int = 0) -> None:
        self.got.append(msgpack.unpackb(data[2:] if data[1] & 0x7F < 126 else data[4:]))

    def kick(self, reason: str) -> None:
        self.got.append({"t": "bye", "reason": reason})


async def run_repair(history: History, room: Room) -> tuple[Resync, list[asyncio.Task[Any]]]:
    tasks: list[asyncio.Task[Any]] = []
    resync = Resync(
        RoomConfig(), cast(Broker, history), Metrics(), {room.id: room},
        lambda c: tasks.append(asyncio.ensure_future(c)), lambda r: None, lambda r, m: None,
    )
    return resync, tasks


async def settle(tasks: list[asyncio.Task[Any]]) -> None:
    while not all(t.done() for t in tasks):
        await asyncio.gather(*tasks)


async def test_repair_retries_and_coalesces() -> None:
    """Two gaps, history down for two reads: one repair at a time, and every seq arrives."""
    room = room_at(10)
    history = History(20, fail=2, delay=0.01)
    resync, tasks = await run_repair(history, room)
    room.accept(msg(13))
    resync.repair_soon(room)
    room.accept(msg(17))  # a second gap while the first repair runs
    resync.repair_soon(room)
    room.accept(msg(20))
    resync.repair_soon(room)
    await settle(tasks)
    assert history.most_in_flight == 1 and len(tasks) == 1
    assert flush(room) == list(range(11, 21)) and history.reads >= 3


async def test_a_read_failing_in_an_unexpected_way_is_retried_too() -> None:
    """A cluster between two slot maps can fail a read with an error that is not
    Unavailable: the repair goes on. Before, the repair task ended there with the gap still
    open, and the room's later events waited behind it for good."""
    room = room_at(10)
    history = History(20, fail=2, error=RuntimeError)
    resync, tasks = await run_repair(history, room)
    room.accept(msg(13))
    room.accept(msg(14))
    resync.repair_soon(room)
    await settle(tasks)
    assert flush(room) == [11, 12, 13, 14] and not room.missing and history.reads == 3


async def test_trimmed_gap_ends_in_a_fresh_welcome() -> None:
    room = room_at(10)
    viewer = Sink()
    room.viewers[viewer.wire] = {viewer: None}  # type: ignore[dict-item]
    resync, tasks = await run_repair(History(20, gone={11, 12}), room)
    room.accept(msg(14))
    resync.repair_soon(room)
    await settle(tasks)
    (hello,) = viewer.got
    assert hello["t"] == "welcome" and hello["recovered"] is False and hello["seq"] == 20
    assert room.flushed_seq == 20 and not room.missing and flush(room) == []


async def test_redis_away_past_the_bound_sends_viewers_to_reconnect() -> None:
    room = room_at(10)
    viewer = Sink()
    room.viewers[viewer.wire] = {viewer: None}  # type: ignore[dict-item]
    history = History(20, fail=1000)
    resync, tasks = await run_repair(history, room)

    async def down(room_id: str) -> RoomState:
        raise Unavailable("down")

    history.state = down  # type: ignore[method-assign]
    resync.retry_s = 0.5
    room.accept(msg(14))
    resync.repair_soon(room)
    await settle(tasks)
    assert viewer.got == [{"t": "bye", "reason": "resync"}]
    assert not room.missing and not room.repairing


async def test_a_renewed_epoch_with_no_history_yet_goes_on_from_the_state() -> None:
    """Another hub moved the room to a new epoch after Redis lost events (room_renew.lua:
    history kept from the first seq handed out again, none yet; seqs go on from 12). This hub, at 23 under the old epoch, starts
    over at the state's seq: the next event is taken, not a gap from 1 that history cannot
    fill (which ended in a second fresh welcome, hiding the events published meanwhile)."""
    room = Room("r", CommentSampler(0, 100))
    room.start("e0", 23, 0, 0)
    history = History(12, gone=set(range(1, 13)))  # state: e1 at 12; history: nothing yet
    resync, tasks = await run_repair(history, room)
    viewer = Sink()
    room.viewers[viewer.wire] = {viewer: None}  # type: ignore[dict-item]
    await resync.reset(room)
    assert room.epoch == "e1" and room.left_epoch == "e0" and room.high_seq == 12
    assert [f["t"] for f in viewer.got] == ["welcome"] and viewer.got[0]["recovered"] is False
    assert room.accept(msg(13)) is None and flush(room) == [13]


def test_where_the_timeline_redis_kept_parts_from_the_one_published() -> None:
    prints = {s: fingerprint(body(f"n{s}")) for s in range(10, 21)}
    kept = [({"seq": s}, fingerprint(body(f"n{s}" if s < 17 else f"new{s}"))) for s in range(12, 20)]
    assert first_new_content(prints, kept, 20) == 17  # 17-19 were handed out again too
    assert first_new_content(prints, kept[:5], 20) == 20  # all that was read agrees
    assert first_new_content({}, kept, 20) == 20  # nothing to compare with: what is known


class Renewed(History):
    """Redis after a lagging replica was promoted: seqs from `new_from` hold other events
    than were published; the renew compare-and-set moves it to e2, trimming history."""

    def __init__(self, upto: int, new_from: int) -> None:
        super().__init__(upto)
        self.new_from = new_from
        self.epoch = "e1"
        self.renewed: list[tuple[str, int]] = []

    async def history(self, room: str, after: int, count: int) -> list[tuple[int, bytes]]:
        self.reads += 1
        got = [(s, body(f"n{s}" if s < self.new_from else f"new{s}")) for s in range(after + 1, self.upto + 1)]
        return [(s, b) for s, b in got if s not in self.gone][:count]

    async def renew_epoch(self, room: str, had: str, keep_from: int) -> str:
        self.renewed.append((had, keep_from))
        if had == self.epoch:
            self.epoch = "e2"
            self.gone |= set(range(1, keep_from))
        return self.epoch

    async def state(self, room: str) -> RoomState:
        return RoomState(seq=self.upto, epoch=self.epoch, first_seq=1, online=0, likes=0, comments=0, peak=0, pinned=None, sales=[])


async def test_a_reused_seq_starts_the_room_over_with_the_events_handed_out_again() -> None:
    """The hub had 1-20 as published; Redis kept 1-16 and handed 17-22 out again for other
    events (acked: a host's notices). The hub missed 17-19 (a resubscribe) and sees the reuse
    at 20: its viewers get a fresh welcome, then Redis's 17-22, the events they never saw."""
    room = room_at(0)
    for s in range(1, 21):
        room.accept(msg(s))
    flush(room)
    history = Renewed(22, new_from=17)
    resync, tasks = await run_repair(history, room)
    viewer = Sink()
    room.viewers[viewer.wire] = {viewer: None}  # type: ignore[dict-item]
    assert room.accept(DurableMsg(20, "e1", body("new20"))) == REUSED
    await resync.lost(room, 20, "e1")
    assert history.renewed == [("e1", 17)]
    hello, more = viewer.got
    assert hello["t"] == "welcome" and hello["recovered"] is False and hello["epoch"] == "e2" and hello["seq"] == 22
    assert [e["text"] for e in more["events"]] == [f"new{s}" for s in range(17, 23)]
    assert room.epoch == "e2" and room.left_epoch == "e1" and room.flushed_seq == 22
    await resync.lost(room, 21, "e1")  # a second notice of the same loss, late: nothing more
    assert history.renewed == [("e1", 17)] and len(viewer.got) == 2
