"""Flash sales never oversell, never exceed the per-person limit, never buy twice on a retry."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any, Callable

import aiohttp
import msgpack
import redis

from liveroom.broker import keys as K
from liveroom.broker.sharding import shard_of
from liveroom.redis_local import RedisClusterProcesses, RedisProcess, find_server
from tests.support import Client, HubProcess, eventually, http, t, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0"}


def room() -> str:
    return "sale" + uuid.uuid4().hex[:8]


async def open_sale(base: str, room_: str, **fields: Any) -> str:
    host = await Client.connect(base, room_, token("shop", role="host", rooms=[room_]))
    try:
        body = {"sku": "SKU-1", "title": "Down jacket", "price": 39900, "stock": 100, "limit": 1, **fields}
        r = await host.call("sale_create", **body)
        assert r["ok"], r
        return str(r["sale"])
    finally:
        await host.close()



def orders_in_stream(url: str, room_: str, event: str = "created") -> list[dict[bytes, bytes]]:
    r = redis.Redis.from_url(url)
    try:
        entries = r.xrange("lr:orders")
    finally:
        r.close()
    return [f for _, f in entries if f[b"room"] == room_.encode() and f[b"event"] == event.encode()]


async def test_two_thousand_buyers_one_hundred_units(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    """2 hubs, 2,000 buyers on their own sockets, stock 100, limit 1: exactly 100 orders."""
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    r_ = room()
    sale = await open_sale(hubs[0].base, r_, stock=100, limit=1)
    n = 2000
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(200)

        async def connect(i: int) -> aiohttp.ClientWebSocketResponse:
            async with sem:
                ws = await session.ws_connect(
                    hubs[i % 2].base + "/ws", params={"room": r_, "token": token(f"buyer{i}")}
                )
                welcome = msgpack.unpackb((await ws.receive(timeout=t(20))).data)
                assert welcome["t"] == "welcome"
                return ws

        sockets = await asyncio.gather(*(connect(i) for i in range(n)))

        async def buy(i: int, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
            await ws.send_bytes(msgpack.packb({"t": "buy", "id": 1, "sale": sale, "qty": 1, "key": f"k{i}"}))
            while True:
                f = msgpack.unpackb((await ws.receive(timeout=t(30))).data)
                if f["t"] == "reply":
                    return f

        # every buyer taps at the same moment
        replies = await asyncio.gather(*(buy(i, ws) for i, ws in enumerate(sockets)))
        await asyncio.gather(*(ws.close() for ws in sockets))

    ok = [r for r in replies if r["ok"]]
    refused = [r["error"]["code"] for r in replies if not r["ok"]]
    assert len(ok) == 100
    assert set(refused) == {"sold_out"} and len(refused) == n - 100
    assert len({r["order"] for r in ok}) == 100
    assert sorted(r["remaining"] for r in ok) == list(range(100))
    host = token("shop", role="host", rooms=[r_])
    status, body = await http("GET", f"{hubs[1].base}/api/rooms/{r_}/sales/{sale}", host)
    assert status == 200 and body["sale"]["stock"] == 0 and body["sale"]["status"] == "sold_out"
    assert body["sale"]["buyers"] == 100  # nobody above the limit of 1
    created = orders_in_stream(redis1.url, r_)
    assert len(created) == 100
    assert len({f[b"user"] for f in created}) == 100


async def test_sale_on_a_redis_cluster(
    start_hub: Callable[..., HubProcess], cluster3: RedisClusterProcesses
) -> None:
    """The same on a 3-master cluster, two hubs: 300 buyers for 30 units, exactly 30
    orders, in the room's own orders stream on the node that owns the room."""
    hubs = [start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url, **FAST) for _ in range(2)]
    r_ = room()
    sale = await open_sale(hubs[0].base, r_, stock=30, limit=1)
    buyers = [await Client.connect(hubs[i % 2].base, r_, token(f"cb{i}")) for i in range(300)]
    try:
        replies = await asyncio.gather(*(c.call("buy", sale=sale, qty=1, key="k") for c in buyers))
        again = await asyncio.gather(*(c.call("buy", sale=sale, qty=1, key="k") for c in buyers[:50]))
    finally:
        await asyncio.gather(*(c.close() for c in buyers))
    ok = [r for r in replies if r["ok"]]
    assert len(ok) == 30 and len({r["order"] for r in ok}) == 30
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"sold_out"}
    assert [{k: v for k, v in r.items() if k != "id"} for r in again] == [
        {k: v for k, v in r.items() if k != "id"} for r in replies[:50]
    ]  # a repeated key gets its first answer
    rc = redis.RedisCluster.from_url(cluster3.url)
    try:
        stream = rc.xrange(f"lr:{{{r_}}}:orders:stream")
    finally:
        rc.close()
    assert len([f for _, f in stream if f[b"event"] == b"created"]) == 30


async def test_sale_survives_its_slot_moving_to_another_master(start_hub: Callable[..., HubProcess]) -> None:
    """Resharding during a sale: the room's slot (and its keys) moves to another master.
    Comments still reach the room, buys keep being answered (the hub follows MOVED), nothing
    is sold twice, a repeated key still gets its first answer."""
    cluster = RedisClusterProcesses(find_server(), masters=3).start()  # ours: we move a slot
    try:
        h = start_hub(LIVEROOM_REDIS_CLUSTER=cluster.url, **FAST)
        r_ = room()
        sale = await open_sale(h.base, r_, stock=20, limit=1)
        buyers = [await Client.connect(h.base, r_, token(f"mv{i}")) for i in range(30)]
        first = [await c.call("buy", sale=sale, qty=1, key="k") for c in buyers[:10]]
        assert all(r["ok"] for r in first)

        nodes = {n.port: redis.Redis(port=n.port) for n in cluster.nodes}
        slot = next(iter(nodes.values())).cluster("KEYSLOT", f"{{{r_}}}")
        src = next(p for p, c in nodes.items() if c.cluster("COUNTKEYSINSLOT", slot))
        dst = next(p for p in nodes if p != src)
        src_id, dst_id = nodes[src].cluster("MYID"), nodes[dst].cluster("MYID")
        nodes[dst].cluster("SETSLOT", slot, "IMPORTING", src_id)
        nodes[src].cluster("SETSLOT", slot, "MIGRATING", dst_id)
        keys = nodes[src].cluster("GETKEYSINSLOT", slot, 1000)
        nodes[src].execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        for c in nodes.values():
            c.cluster("SETSLOT", slot, "NODE", dst_id)
        for c in nodes.values():
            c.close()

        # the room's events still reach its viewers: the hub follows the channel's slot
        said = await buyers[1].call("comment", text="after the move")
        assert said["ok"], said
        await buyers[0].wait_for(
            lambda: any(e.get("text") == "after the move" for e in buyers[0].of_type("comment")),
            timeout=10,
            what="a comment published after the slot moved",
        )
        rest = [await c.call("buy", sale=sale, qty=1, key="k") for c in buyers[10:]]
        replay = [await c.call("buy", sale=sale, qty=1, key="k") for c in buyers[:10]]
        for c in buyers:
            await c.close()
        assert [r["ok"] for r in rest] == [True] * 10 + [False] * 10
        assert {r["error"]["code"] for r in rest[10:]} == {"sold_out"}
        assert [r["order"] for r in replay] == [r["order"] for r in first]
        status, body = await http("GET", f"{h.base}/api/rooms/{r_}/sales/{sale}", token("shop", role="host", rooms=[r_]))
        assert status == 200 and body["sale"]["stock"] == 0 and body["sale"]["buyers"] == 20
    finally:
        cluster.stop()


async def test_per_person_limit(shared_hub: HubProcess) -> None:
    """Limit 3: buying 1, 2, then 1 more fails with limit_reached; stock and quota agree."""
    r_ = room()
    sale = await open_sale(shared_hub.base, r_, stock=10, limit=3)
    c = await Client.connect(shared_hub.base, r_, token("alice"))
    try:
        assert (await c.call("buy", sale=sale, qty=1, key="a1"))["remaining"] == 9
        assert (await c.call("buy", sale=sale, qty=2, key="a2"))["remaining"] == 7
        r = await c.call("buy", sale=sale, qty=1, key="a3")
        assert r["error"]["code"] == "limit_reached"
        r = await c.call("buy", sale=sale, qty=4, key="a4")
        assert r["error"]["code"] == "bad_field"  # more than the limit in one go
        r = await c.call("buy", sale=sale, qty=0, key="a5")
        assert r["error"]["code"] == "bad_field"
        r = await c.call("buy", sale=sale, qty=1)
        assert r["error"]["code"] == "bad_field"  # no idempotency key
        r = await c.call("buy", sale="s-nope", qty=1, key="a6")
        assert r["error"]["code"] == "no_such_sale"
        _, body = await http("GET", f"{shared_hub.base}/api/rooms/{r_}/sales/{sale}", token("shop", role="host", rooms=[r_]))
        assert body["sale"]["stock"] == 7 and body["sale"]["sold"] == 3
        # the stock change reached the room as an ephemeral `stock` event
        await c.wait_for(lambda: any(e["remaining"] == 7 for e in c.of_type("stock")), what="stock 7")
    finally:
        await c.close()


async def test_big_stock_published_when_its_first_two_digits_change(shared_hub: HubProcess, redis1: RedisProcess) -> None:
    """A large sale does not publish its stock once per unit to every hub (the room's shard
    pays each publish once per subscribed hub): only when the first two digits change, and
    every unit below 100. The buyer's reply has the exact figure, and so does a join."""
    import redis.asyncio as aioredis

    from liveroom.broker.keys import room_keys

    r_ = room()
    sale = await open_sale(shared_hub.base, r_, stock=150, limit=100)
    sub = aioredis.Redis.from_url(redis1.url).pubsub()
    await sub.subscribe(room_keys(r_).channel)
    buyer = await Client.connect(shared_hub.base, r_, token("bulk"))
    try:
        for i in range(60):
            r = await buyer.call("buy", sale=sale, qty=1, key=f"b{i}")
            assert r["ok"] and r["remaining"] == 149 - i, r
        published: list[int] = []
        quiet_until = asyncio.get_running_loop().time() + t(1)
        while asyncio.get_running_loop().time() < quiet_until:
            m = await sub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if m is not None and m["data"].startswith(b"S" + sale.encode() + b" "):
                published.append(int(m["data"].split()[1]))
        assert published == [149, 139, 129, 119, 109, *range(99, 89, -1)]
        late = await Client.connect(shared_hub.base, r_, None)
        assert [s_["stock"] for s_ in late.welcome["state"]["sales"] if s_["id"] == sale] == [90]
        await late.close()
    finally:
        await buyer.close()
        await sub.aclose()


async def test_order_ids_stay_unique_when_redis_loses_the_count(shared_hub: HubProcess, redis1: RedisProcess) -> None:
    """The sale's order counter goes back (as on a replica promoted before it had the last
    buys): the next order still gets an id of its own, and both orders can be read back."""
    r_ = room()
    sale = await open_sale(shared_hub.base, r_, stock=10, limit=1)
    a = await Client.connect(shared_hub.base, r_, token("alice"))
    b = await Client.connect(shared_hub.base, r_, token("bob"))
    r = redis.Redis.from_url(redis1.url)
    try:
        first = await a.call("buy", sale=sale, qty=1, key="k")
        r.hset(K.room_keys(r_).sales, f"{sale}:n", 0)  # the count Redis "lost"
        second = await b.call("buy", sale=sale, qty=1, key="k")
        assert first["ok"] and second["ok"] and first["order"] != second["order"]
        shop = token("shop", role="host", rooms=[r_])
        for who, reply in (("alice", first), ("bob", second)):
            status, body = await http("GET", f"{shared_hub.base}/api/orders/{reply['order']}", shop)
            assert status == 200 and body["order"]["user"] == who, body
    finally:
        r.close()
        await a.close()
        await b.close()


async def test_same_key_five_times_concurrently(shared_hub: HubProcess) -> None:
    """One key sent 5 times at once from 5 sockets: one order, five identical replies."""
    r_ = room()
    sale = await open_sale(shared_hub.base, r_, stock=10, limit=5)
    socks = [await Client.connect(shared_hub.base, r_, token("bob")) for _ in range(5)]
    try:
        replies = await asyncio.gather(*(c.call("buy", sale=sale, qty=1, key="tap-1") for c in socks))
        bodies = [{k: v for k, v in r.items() if k != "id"} for r in replies]
        assert all(b == bodies[0] for b in bodies) and bodies[0]["ok"]
        _, body = await http("GET", f"{shared_hub.base}/api/rooms/{r_}/sales/{sale}", token("shop", role="host", rooms=[r_]))
        assert body["sale"]["stock"] == 9
        # a failure is remembered too: the same key keeps its first answer
        assert (await socks[0].call("buy", sale=sale, qty=9, key="tap-2"))["error"]["code"] == "bad_field"
        assert (await socks[1].call("buy", sale=sale, qty=1, key="tap-2"))["error"]["code"] == "bad_field"
    finally:
        for c in socks:
            await c.close()


async def test_time_window_and_close(shared_hub: HubProcess) -> None:
    """Before starts_at: not_started; after the host closes it: closed; anonymous: forbidden."""
    r_ = room()
    now = int(time.time() * 1000)
    later = await open_sale(shared_hub.base, r_, starts_at=now + 3_600_000, ends_at=now + 7_200_000)
    ending = await open_sale(shared_hub.base, r_, ends_at=now + 1500)
    c = await Client.connect(shared_hub.base, r_, token("carol"))
    anon = await Client.connect(shared_hub.base, r_, None)
    try:
        assert (await c.call("buy", sale=later, qty=1, key="x1"))["error"]["code"] == "not_started"
        assert (await anon.call("buy", sale=ending, qty=1, key="x2"))["error"]["code"] == "forbidden"
        # until the hub's clock has passed ends_at, not a fixed 1.6 s
        await asyncio.sleep(max(0.0, (now + 1500) / 1000 - time.time()) + 0.05)
        assert (await c.call("buy", sale=ending, qty=1, key="x3"))["error"]["code"] == "ended"
        host = token("shop", role="host", rooms=[r_])
        status, _ = await http("POST", f"{shared_hub.base}/api/rooms/{r_}/sales/{later}/close", host)
        assert status == 200
        await c.wait_for(lambda: any(e["sale"]["status"] == "closed" for e in c.of_type("sale")), what="close")
        assert (await c.call("buy", sale=later, qty=1, key="x4"))["error"]["code"] == "closed"
        viewer = token("carol")
        status, body = await http("POST", f"{shared_hub.base}/api/rooms/{r_}/sales", viewer, {"sku": "a", "title": "b", "price": 1, "stock": 1, "limit": 1})
        assert status == 403 and body["error"]["code"] == "forbidden"
        assert (await c.call("sale_create", sku="a", title="b", price=1, stock=1, limit=1))["error"]["code"] == "forbidden"
    finally:
        await c.close()
        await anon.close()


async def test_cancel_and_expiry_race(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """500 pending orders, cancels racing the expiry reaper: every unit comes back once."""
    h = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_PAY_WINDOW_S="1.5", **FAST)
    r_ = room()
    sale = await open_sale(h.base, r_, stock=500, limit=500, price=100)
    c = await Client.connect(h.base, r_, token("whale"))
    try:
        orders = []
        for i in range(500):
            await c.send({"t": "buy", "id": i + 1, "sale": sale, "qty": 1, "key": f"w{i}"})
        await c.wait_for(lambda: len(c.replies) == 500, timeout=30, what="500 replies")
        orders = [r["order"] for r in c.replies.values()]
        assert len(set(orders)) == 500
        host = token("shop", role="host", rooms=[r_])
        shop = token("shop-backend", role="shop", rooms=[r_])  # orders are the shop's to cancel
        # the race itself: the cancels are sent right at the pay deadline (1.5 s), so that
        # they collide with the reaper's expiries; a condition to wait on would defeat it
        await asyncio.sleep(1.4)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {shop}"}) as s:

            async def cancel(o: str) -> int:
                async with s.post(f"{h.base}/api/orders/{o}/cancel") as resp:
                    return resp.status

            statuses = await asyncio.gather(*(cancel(o) for o in orders))
        assert set(statuses) <= {200, 409}

        async def settled() -> dict[str, Any]:
            return (await http("GET", f"{h.base}/api/rooms/{r_}/sales/{sale}", host))[1]["sale"]

        async def all_back() -> bool:
            return bool((await settled())["stock"] == 500)

        await eventually(all_back, timeout=10, what="every unit back in stock")
        s_ = await settled()
        assert s_["stock"] == 500 and s_["buyers"] == 0
        released = orders_in_stream(redis1.url, r_, "cancelled") + orders_in_stream(redis1.url, r_, "expired")
        assert len(released) == 500
        assert len({f[b"order"] for f in released}) == 500
        assert statuses.count(200) == len(orders_in_stream(redis1.url, r_, "cancelled"))
        _, stats = await http("GET", f"{h.base}/api/rooms/{r_}", host)
        assert stats["orders"]["pending"] == 0 and stats["gmv"]["pending"] == 0
    finally:
        await c.close()


async def test_confirm_and_stats(shared_hub: HubProcess) -> None:
    """Confirmed orders count in the session figures and cannot be cancelled."""
    r_ = room()
    sale = await open_sale(shared_hub.base, r_, stock=5, limit=2, price=2500)
    c = await Client.connect(shared_hub.base, r_, token("dan"))
    host = token("shop", role="host", rooms=[r_])
    shop = token("shop-backend", role="shop", rooms=[r_])
    try:
        o1 = (await c.call("buy", sale=sale, qty=2, key="d1"))["order"]
        status, _ = await http("POST", f"{shared_hub.base}/api/orders/{o1}/confirm", shop)
        assert status == 200
        status, body = await http("POST", f"{shared_hub.base}/api/orders/{o1}/cancel", shop)
        assert status == 409 and body["error"]["code"] == "closed"
        status, body = await http("POST", f"{shared_hub.base}/api/orders/{o1}/confirm", token("other-shop", role="shop", rooms=["x"]))
        assert status == 403
        status, body = await http("POST", f"{shared_hub.base}/api/orders/o9-nope/confirm", shop)
        assert status == 404 and body["error"]["code"] == "no_such_order"
        _, stats = await http("GET", f"{shared_hub.base}/api/rooms/{r_}", host)
        assert stats["orders"] == {"confirmed": 1, "pending": 0}
        assert stats["gmv"] == {"confirmed": 5000, "pending": 0}
        _, order = await http("GET", f"{shared_hub.base}/api/orders/{o1}", host)
        assert order["order"]["status"] == "confirmed" and order["order"]["user"] == "dan"
    finally:
        await c.close()


async def test_shard_down_answers_unavailable(
    start_hub: Callable[..., HubProcess], shards2: list[RedisProcess]
) -> None:
    """The sale's shard stops answering: buys get `unavailable` promptly; once it is back,
    retries with the same keys never sell anything twice."""
    urls = ",".join(s.url for s in shards2)
    h = start_hub(LIVEROOM_REDIS=urls, **FAST)
    r_ = room()
    shard = shards2[shard_of(r_, 2)]
    sale = await open_sale(h.base, r_, stock=50, limit=1)
    buyers = [await Client.connect(h.base, r_, token(f"p{i}")) for i in range(20)]
    assert shard.proc is not None
    os.kill(shard.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        replies = await asyncio.gather(*(c.call("buy", sale=sale, qty=1, key=f"k{i}") for i, c in enumerate(buyers)))
        elapsed = time.monotonic() - started
        assert {r["error"]["code"] for r in replies} == {"unavailable"}
        assert elapsed < t(2.0), f"buys hung for {elapsed:.1f}s"
    finally:
        os.kill(shard.proc.pid, signal.SIGCONT)

    async def ready() -> bool:
        async with aiohttp.ClientSession() as s:
            async with s.get(h.base + "/readyz") as r:
                return r.status == 200

    await eventually(ready, what="the hub reaching every shard again")
    # the same taps again, after the shard is back: each key gets exactly one order
    replies = []
    for i, c in enumerate(buyers):
        replies.append(await c.call("buy", sale=sale, qty=1, key=f"k{i}"))
        replies.append(await c.call("buy", sale=sale, qty=1, key=f"k{i}"))
    assert all(r["ok"] for r in replies)
    orders = [r["order"] for r in replies]
    assert len(set(orders)) == 20
    _, body = await http("GET", f"{h.base}/api/rooms/{r_}/sales/{sale}", token("shop", role="host", rooms=[r_]))
    assert body["sale"]["stock"] == 30 and body["sale"]["buyers"] == 20
    for c in buyers:
        await c.close()
