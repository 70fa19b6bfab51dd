"""A viewer's welcome state and seq agree, whatever the host does while it joins."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from typing import Callable

from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, token

ROUNDS = 6
JOINERS = 150


def durable_seqs(c: Client) -> list[int]:
    return [e["seq"] for e in c.events if "seq" in e]


def pinned_now(c: Client) -> Any:
    """What this viewer shows as pinned: the welcome's, then every pin event after it."""
    pinned = c.welcome["state"]["pinned"]
    for e in c.of_type("pin"):
        pinned = e["product"]
    return pinned


def sales_seen(c: Client) -> set[str]:
    return {s["id"] for s in c.welcome["state"]["sales"]} | {e["sale"]["id"] for e in c.of_type("sale")}


async def test_joiners_racing_pin_and_sale_miss_nothing(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """Bursts of viewers join an open room while the host pins a product and opens a sale:
    every one of them ends up showing that product and that sale, and the events after its
    welcome start right after the welcome's seq, with no gap and nothing twice."""
    # a short tick: more flushes land while a joiner's state read is in flight
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_TICK_MS="20", LIVEROOM_FRAME_RATE="0", LIVEROOM_COMMENT_RATE="0")
    room = "race" + uuid.uuid4().hex[:8]
    host = await Client.connect(hub.base, room, token("host", role="host", rooms=[room]))
    keeper = await Client.connect(hub.base, room, token("keeper"))  # the room is open on the hub
    rng = random.Random(7)
    try:
        # a room that has sold before: a bigger state to read, so the read of each joiner
        # takes longer, as in a busy room
        for i in range(40):
            r = await host.call("sale_create", sku=f"old{i}", title="Earlier item " + "x" * 200, price=100, stock=10, limit=1)
            assert (await host.call("sale_close", sale=r["sale"]))["ok"]
        for rnd in range(ROUNDS):
            product = {"id": f"p{rnd}", "title": f"Jacket {rnd}"}
            sale: dict[str, Any] = {}

            async def host_acts() -> None:
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                assert (await host.call("pin", product=product))["ok"]
                r = await host.call("sale_create", sku=f"S{rnd}", title="Scarf", price=100, stock=10, limit=1)
                assert r["ok"], r
                sale["id"] = r["sale"]

            joins = [Client.connect(hub.base, room, token(f"v{rnd}-{i}")) for i in range(JOINERS)]
            *viewers, _ = await asyncio.gather(*joins, host_acts())
            try:
                ok = lambda v: pinned_now(v) == product and sale["id"] in sales_seen(v)  # noqa: E731
                # one deadline for the whole burst: anything not there by then never comes
                await asyncio.gather(*(v.wait_for(lambda v=v: ok(v), timeout=3, what="pin") for v in viewers), return_exceptions=True)
                missed = [(v.welcome["seq"], v.welcome["state"]["pinned"], durable_seqs(v)) for v in viewers if not ok(v)]
                assert not missed, f"round {rnd}: {len(missed)} of {JOINERS} viewers missed the pin or sale: {missed[:3]}"
                for v in viewers:
                    seqs = durable_seqs(v)
                    start = v.welcome["seq"] + 1
                    assert seqs == list(range(start, start + len(seqs))), (v.welcome["seq"], seqs)
            finally:
                await asyncio.gather(*(v.close() for v in viewers))
    finally:
        await host.close()
        await keeper.close()
