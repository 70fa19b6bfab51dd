"""The chaos suite, small and short: each fault of bench/chaos.py (bench/chaoslib.py holds
the faults, the load and the audit) with comments, notices, likes, a sale and a draw in
flight, and what a user must never notice asserted: no hub crash, rooms on other shards
unaffected, no oversell, no confirmed order lost, no durable event lost for a viewer who
resumes, every buy during the fault answered (`unavailable` or a result).

Each scenario runs once (a module-level cache) and several tests read its result, so that
an expectation that fails on main because of a defect being fixed elsewhere is its own
xfail test, and the others still guard the rest.
"""

from __future__ import annotations

from typing import Awaitable, Callable

import pytest

from bench import chaoslib
from bench.chaoslib import Result, Settings

SMALL = Settings(
    stop_s=3.0, outage_s=2.0, viewers=4, buyers=12, stock=8, comment_rate=5.0, notice_rate=2.0, like_rate=5.0,
    crowd=200, crowd_s=6.0, settle_s=20.0,
)  # fmt: skip

_results: dict[str, Result] = {}


async def result(name: str) -> Result:
    """The scenario's result, run by the first test that asks (a Result is plain data)."""
    if name not in _results:
        run: Callable[[Settings], Awaitable[Result]] = chaoslib.FAULTS[name]
        _results[name] = await run(SMALL)
    return _results[name]


def expect_the_basics(r: Result) -> None:
    """What holds for every fault: the hubs live on, nothing sold twice, every buy and every
    durable event reaches its user, and the room works again."""
    assert r.hub_crashes == 0, r.row()
    assert r.oversells == 0, r.row()
    assert r.unanswered == 0, r.row()
    assert r.lost == 0, r.row()
    assert r.recover_s is not None, r.row()


async def test_shard_killed_restarted_empty() -> None:
    r = await result("kill-empty")
    expect_the_basics(r)
    assert r.other_ok, r.row()
    # orders acked before the crash went with the shard's data: a Redis without persistence
    # cannot keep them (the AOF case below must)


async def test_shard_killed_restarted_from_aof() -> None:
    r = await result("kill-aof")
    expect_the_basics(r)
    assert r.other_ok, r.row()
    assert r.orders_lost == 0, r.row()


async def test_shard_stopped() -> None:
    r = await result("stop")
    expect_the_basics(r)
    assert r.other_ok, r.row()
    assert r.orders_lost == 0, r.row()


@pytest.mark.xfail(
    strict=False,
    reason="faults: idempotency keys on comment/notice; an op answered `unavailable` during a SIGSTOP is "
    "published after the resume, and its retry with the same key is published again",
)
async def test_shard_stopped_retry_with_same_key_is_safe() -> None:
    r = await result("stop")
    assert r.twice == 0, r.row()


async def test_hub_killed_mid_sale_and_draw() -> None:
    r = await result("hub-kill")
    expect_the_basics(r)
    assert r.orders_lost == 0, r.row()


async def test_cluster_master_fails_over() -> None:
    r = await result("failover")
    assert r.hub_crashes == 0, r.row()
    assert r.oversells == 0, r.row()
    assert r.unanswered == 0, r.row()
    assert r.recover_s is not None, r.row()


@pytest.mark.xfail(
    strict=False,
    reason="repair: gap repair after a failover (retry of a failed history read, late results); seen on main "
    "once in five runs: 18 events of the election window never reached 2 of the room's viewers",
)
async def test_cluster_failover_loses_no_event_for_viewers() -> None:
    r = await result("failover")
    assert r.lost == 0, r.row()


@pytest.mark.xfail(strict=False, reason="repair: sales WAIT for a replica before answering; an acked order can go with the master")
async def test_cluster_failover_keeps_acked_orders() -> None:
    r = await result("failover")
    assert r.orders_lost == 0, r.row()


async def test_cluster_failover_leaves_other_masters_rooms_alone() -> None:
    """With cluster-require-full-coverage no (chaoslib.start_cluster); with Redis's default
    every node refuses (CLUSTERDOWN) until the replica is promoted."""
    r = await result("failover")
    assert r.other_ok, r.row()


async def test_cluster_takeover_by_a_lagging_replica_basics() -> None:
    """A replica cut off from its master for 1.5 s is promoted (TAKEOVER): the acked writes
    it lacks are gone from Redis, and the hubs must live on and answer."""
    r = await result("failover-lag")
    assert r.hub_crashes == 0, r.row()
    assert r.unanswered == 0, r.row()
    assert r.recover_s is not None, r.row()
    assert r.other_ok, r.row()


@pytest.mark.xfail(
    strict=False,
    reason="repair: after a promotion that lost writes, seqs are reused in the same epoch (viewers drop the "
    "new events as duplicates: no fresh welcome), order ids repeat (a replicated counter) and sales do not "
    "WAIT for a replica (oversell, acked orders lost); seen on main: 40 events lost, 4 oversold, 10 of 12 orders",
)
async def test_cluster_takeover_by_a_lagging_replica_loses_nothing_acked() -> None:
    r = await result("failover-lag")
    assert r.lost == 0, r.row()
    assert r.oversells == 0, r.row()
    assert r.orders_lost == 0, r.row()


async def test_socket_that_never_reads() -> None:
    r = await result("slow-socket")
    assert r.hub_crashes == 0, r.row()
    assert r.lost == 0, r.row()  # the crowd got every notice
    assert r.unanswered == 0, r.row()
    assert r.recover_s is not None, r.row()  # the stalled socket was cut (`bye slow`)
