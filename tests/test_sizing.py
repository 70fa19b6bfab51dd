"""The sizing model (bench/sizing.py) turns measured unit costs into hubs and Redis shards:
pure arithmetic, checked here on figures whose answer is known."""

from __future__ import annotations

from typing import Any

from bench.sizing import stock_publishes, Assumptions, derive, fit_hub


def runs(c: float, f: float, deliveries: float, hubs: list[int]) -> list[dict[str, Any]]:
    """Hub runs as bench/fanout.py reports them, made from a known cost per delivery `c` and
    per hub `f`: the same viewers and comments split over `hubs` processes."""
    return [
        {"hubs": h, "deliveries_per_s": deliveries, "hub_core": deliveries * c + h * f, "idle_core_per_10k_viewers": 0.02,
         "kb_per_conn": 2.4, "bytes_per_viewer_s": 2500.0, "redis_core": 0.005}
        for h in hubs
    ]  # fmt: skip


def measured(us_per_sub: float, hubs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "hubs": hubs or runs(3e-6, 0.02, 80_000, [1, 2, 4]),
        "pubsub": {"us_per_publish_base": 10.0, "us_per_publish_per_subscriber": us_per_sub, "steps": []},
        "buy": {
            "ok": {"usec_per_call": 35.0},
            "sold_out": {"usec_per_call": 20.0},
            "comment": {"usec_per_call": 30.0},
            "like": {"usec_per_call": 30.0},
        },
    }


def test_the_fit_separates_the_cost_of_a_delivery_from_the_cost_of_a_hub() -> None:
    c, f = fit_hub(runs(3e-6, 0.02, 80_000, [1, 2, 4]))
    assert abs(c - 3e-6) < 1e-9 and abs(f - 0.02) < 1e-6


def test_600k_viewers_need_enough_hubs_and_none_above_its_open_files() -> None:
    d = derive(measured(1.5), Assumptions())
    # 20 comments/s x 3 us = 6 % of a core per 1,000 viewers: 60 % of a core is ~9,700 viewers
    assert 9_000 < d["viewers_per_hub"] < 10_000
    assert d["hubs"] * d["viewers_per_hub"] >= 600_000
    few = derive(measured(1.5, runs(1e-7, 0.0, 80_000, [1, 2])), Assumptions())
    assert few["viewers_per_hub"] == Assumptions().fd_cap  # cheap viewers: the file limit decides
    assert few["egress_gbit_s"] == 12.0  # 600,000 x 2,500 B/s


def test_a_channel_whose_fanout_limits_the_sale_is_split_over_replicas() -> None:
    quiet = derive(measured(1.5), Assumptions(buy_rate=500))
    assert not quiet["fanout_split_needed"] and quiet["redis_core_opening"] < 0.7
    assert quiet["sellout_s_one_channel"] == 20.0  # 10,000 units at 500 taps/s
    # 10,000 units publish 280 stock values (sale_buy.lua's two-digit rule), not 10,000: the
    # rush fits one channel
    rush = derive(measured(1.5), Assumptions(buy_rate=12_000))
    assert stock_publishes(10_000) == 280
    assert rush["redis_core_opening"] < 0.7 and not rush["fanout_split_needed"]
    # below 100 units every unit publishes: 12,000 x (35 + 62 x 1.5) us > 1 core, so such a
    # rate on such a stock would need the replicas
    every = derive(measured(1.5), Assumptions(buy_rate=12_000, stock=99))
    assert every["redis_core_opening"] > 1.0 and not every["sale_script_bound"]
    assert every["fanout_split_needed"] and every["subscriber_replicas"] >= 2
    assert every["buys_per_s_split"] > 2 * every["buys_per_s_one_channel"]
    assert every["redis_core_master_with_split"] <= 0.7 + 1e-9


def test_a_sale_script_slower_than_the_shard_is_named_and_no_split_claims_to_fix_it() -> None:
    m = measured(0.05)
    m["buy"]["ok"]["usec_per_call"] = 100.0  # 12,000 x 100 us: 1.2 cores of script alone
    d = derive(m, Assumptions(buy_rate=12_000))
    assert d["sale_script_bound"] and not d["fanout_split_needed"]
    assert d["buys_per_s_one_channel"] < 7_000
