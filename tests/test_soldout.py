"""The sold-out fast path (core/soldout.py): once a hub knows a sale is sold out, buys with
new keys are answered there without reaching Redis; a retried key still gets its first
answer from Redis, whichever hub it first went through; units coming back reopen the path."""

from __future__ import annotations

import uuid
from typing import Any, Awaitable, Callable

import redis

from liveroom.broker import keys as K
from liveroom.broker.base import buy_field
from liveroom.core.soldout import SoldOutBook
from liveroom.redis_local import RedisProcess
from tests.support import Client, eventually, http, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0"}


def test_book_rules() -> None:
    book = SoldOutBook(max_keys=10)
    f = buy_field
    assert not book.answers("r", "s", f("u", "k"), 1, 0)  # nothing known: Redis
    gen = book.refused("r", "s")
    assert gen is not None and book.refused("r", "s") is None  # one read at a time
    assert book.loaded("r", "s", gen, True, 1, 5_000, {f("u", "old")})
    assert book.answers("r", "s", f("u", "new"), 1, 1_000)
    assert not book.answers("r", "s", f("u", "old"), 1, 1_000)  # answered before: Redis replays it
    assert not book.answers("r", "s", f("u", "new"), 2, 1_000)  # above the limit: bad_field, from Redis
    assert not book.answers("r", "s", f("u", "new"), 1, 5_000)  # ended: Redis says so
    book.reopen("r", "s")  # units back
    assert not book.answers("r", "s", f("u", "new"), 1, 1_000)
    # a read begun before units came back is thrown away
    gen = book.refused("r", "s")
    assert gen is not None
    book.reopen("r", "s")
    assert not book.loaded("r", "s", gen, True, 1, 0, set())
    assert not book.answers("r", "s", f("u", "new"), 1, 1_000)
    # a read that found units, or too many keys, keeps the path closed
    gen = book.refused("r", "s")
    assert gen is not None and not book.loaded("r", "s", gen, False, 1, 0, set())
    gen = book.refused("r", "s")
    assert gen is not None and not book.loaded("r", "s", gen, True, 1, 0, None)
    book.forget_room("r")
    assert not book.watching("r")
    # sales.fast_path_keys = 0: the path is off, no read is ever asked for
    off = SoldOutBook(max_keys=0)
    assert off.refused("r", "s") is None and not off.answers("r", "s", f("u", "new"), 1, 1_000)


def evalsha_calls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


async def test_sold_out_buys_are_answered_by_the_hub(
    app_hub: Callable[..., Awaitable[Any]], redis1: RedisProcess
) -> None:
    a = await app_hub(**FAST)
    b = await app_hub(**FAST)
    room = "soldout" + uuid.uuid4().hex[:8]
    host = await Client.connect(a.base, room, token("shop", role="host", rooms=[room]))
    r = redis.Redis.from_url(redis1.url)
    clients: list[Client] = [host]
    try:
        made = await host.call("sale_create", sku="SKU-1", title="Jacket", price=100, stock=2, limit=1)
        assert made["ok"], made
        sale = made["sale"]
        idem = K.room_keys(room).idem(sale)
        alice = await Client.connect(a.base, room, token("alice"))
        bob = await Client.connect(a.base, room, token("bob"))
        clients += [alice, bob]
        first = await alice.call("buy", sale=sale, qty=1, key="ka")
        assert first["ok"], first
        assert (await bob.call("buy", sale=sale, qty=1, key="kb"))["ok"]  # the last unit
        # hub b learns it from Redis's first sold_out answer
        carol = await Client.connect(b.base, room, token("carol"))
        clients.append(carol)
        n = 0

        async def answered_by_hub() -> bool:
            nonlocal n
            n += 1
            before = r.hlen(idem)
            reply = await carol.call("buy", sale=sale, qty=1, key=f"probe{n}")
            assert not reply["ok"] and reply["error"]["code"] == "sold_out", reply
            return r.hlen(idem) == before

        await eventually(answered_by_hub, what="hub b answering sold_out itself")
        # now: 60 buys with new keys, from several users, do not reach Redis
        keys0, calls0 = r.hlen(idem), evalsha_calls(r)
        buyers = [carol] + [await Client.connect(b.base, room, token(f"u{i}")) for i in range(3)]
        clients += buyers[1:]
        for i in range(60):
            reply = await buyers[i % 4].call("buy", sale=sale, qty=1, key=f"new{i}")
            assert not reply["ok"] and reply["error"]["code"] == "sold_out", reply
        assert r.hlen(idem) == keys0, "a sold-out buy with a new key reached Redis"
        assert evalsha_calls(r) - calls0 < 30  # presence beats only, not 60 buys
        # alice's answer was lost; she reconnects to hub b and retries her key: her order
        alice_b = await Client.connect(b.base, room, token("alice"))
        clients.append(alice_b)
        again = await alice_b.call("buy", sale=sale, qty=1, key="ka")
        assert again["ok"] and again["order"] == first["order"], (again, first)
        # a key Redis answered sold_out is replayed from Redis too
        assert (await carol.call("buy", sale=sale, qty=1, key="probe1"))["error"]["code"] == "sold_out"
        # the shop cancels alice's order: the unit comes back, and hub b asks Redis again
        status, _ = await http("POST", f"{a.base}/api/orders/{first['order']}/cancel", token("shop", role="shop", rooms=[room]))
        assert status == 200
        await carol.wait_for(
            lambda: any(e["type"] == "stock" and e["remaining"] == 1 for e in carol.events), what="the unit back"
        )
        dave = await Client.connect(b.base, room, token("dave"))
        clients.append(dave)
        got = await dave.call("buy", sale=sale, qty=1, key="kd")
        assert got["ok"], got
    finally:
        for c in clients:
            await c.close()
        r.close()
