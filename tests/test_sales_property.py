"""Random buys, cancels, confirms and expiries against a model: stock is never lost or made.

Runs the real Lua scripts on a real Redis through the broker, without sockets, so that
hypothesis can try many sequences quickly.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveroom.auth import Identity
from liveroom.broker.base import BrokerEvents
from liveroom.broker.redis import RedisBroker
from liveroom.config import Config, RedisConfig, SalesConfig
from liveroom.core.sales import Sales
from liveroom.core.session import Session
from liveroom.errors import ReplyError
from liveroom.protocol import frames as F
from liveroom.redis_local import RedisProcess

INITIAL, LIMIT = 12, 3
USERS = ["u0", "u1", "u2", "u3", "u4"]

step = st.one_of(
    st.tuples(st.just("buy"), st.sampled_from(USERS), st.integers(1, 4), st.integers(0, 3)),
    st.tuples(st.sampled_from(["cancel", "confirm", "expire"]), st.integers(0, 30)),
)


@pytest.fixture(scope="module")
def env(redis1: RedisProcess) -> Iterator[tuple[asyncio.AbstractEventLoop, Sales, RedisBroker]]:
    loop = asyncio.new_event_loop()
    cfg = replace(Config(), redis=RedisConfig(urls=(redis1.url,)), sales=SalesConfig(pay_window_s=1e-6))  # due at once
    broker = RedisBroker(cfg.redis, "prop-hub", 100)
    loop.run_until_complete(broker.start(BrokerEvents(lambda r, m: None, lambda rooms: None)))
    yield loop, Sales(cfg, broker), broker
    loop.run_until_complete(broker.close())
    loop.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=40))
def test_stock_is_conserved(env: tuple[asyncio.AbstractEventLoop, Sales, RedisBroker], steps: list[Any]) -> None:
    """stock + pending + confirmed == initial after every step, and answers match the model."""
    loop, sales, broker = env
    room = "prop" + uuid.uuid4().hex[:10]
    host = Session(Identity("shop", "shop", "host", (room,)), room, "host")

    async def run() -> None:
        sale = (await sales.create(host, F.SaleCreate("S", "t", 100, INITIAL, LIMIT, 0, 0)))["sale"]
        stock = INITIAL
        held: dict[str, int] = {}
        orders: list[tuple[str, str, int]] = []  # (id, user, qty)
        status: dict[str, str] = {}
        for i, s in enumerate(steps):
            if s[0] == "buy":
                _, user, qty, key = s
                me = Session(Identity(user, user, "viewer", None), room, "viewer")
                try:
                    r = await sales.buy(me, F.Buy(sale, qty, f"{user}-{key}-{i}"))
                except ReplyError as e:
                    want = (
                        "bad_field" if qty > LIMIT
                        else "sold_out" if stock == 0
                        else "limit_reached" if held.get(user, 0) + qty > LIMIT
                        else "sold_out"
                    )  # fmt: skip
                    assert e.code == want, (e.code, want, stock, held, qty)
                    continue
                assert qty <= LIMIT and held.get(user, 0) + qty <= LIMIT and qty <= stock
                stock -= qty
                held[user] = held.get(user, 0) + qty
                assert r["remaining"] == stock
                orders.append((r["order"], user, qty))
                status[r["order"]] = "pending"
            elif orders:
                oid, user, qty = orders[s[1] % len(orders)]
                try:
                    if s[0] == "confirm":
                        await sales.confirm(oid)
                    elif s[0] == "cancel":
                        await sales.cancel(oid)
                    else:
                        await broker.order_release(room, oid, sale, "expired")
                except ReplyError as e:
                    assert status[oid] != "pending" or (s[0] == "confirm" and status[oid] == "confirmed")
                    assert e.code == "closed"
                    continue
                if s[0] == "confirm":
                    assert status[oid] in ("pending", "confirmed")
                    status[oid] = "confirmed"
                else:
                    assert status[oid] == "pending"
                    status[oid] = s[0] + "led" if s[0] == "cancel" else "expired"
                    stock += qty
                    held[user] -= qty
            view = await sales.sale(room, sale)
            pending = sum(q for o, _, q in orders if status[o] == "pending")
            confirmed = sum(q for o, _, q in orders if status[o] == "confirmed")
            assert view["stock"] == stock
            assert view["stock"] + pending + confirmed == INITIAL

    loop.run_until_complete(run())
