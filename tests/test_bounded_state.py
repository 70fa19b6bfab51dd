"""Bounded state: rooms that are over leave nothing in Redis after room.ttl_s, the order
reaper's cost follows what is due (not every room that ever sold), the orders streams are
trimmed by age without losing what a consumer group still needs, read-only requests write
nothing, and a resume past the trimmed history is told so.

The 1,000-room test drives the real scripts on a Redis of its own through the broker (no
sockets: fast), and counts the reaper's commands with INFO commandstats.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from typing import AsyncIterator, Awaitable, Callable

import pytest
import redis

from liveroom.auth import Identity
from liveroom.broker import keys as K
from liveroom.broker.base import BrokerEvents
from liveroom.broker.redis import RedisBroker
from liveroom.config import Config, RedisConfig, RoomConfig, SalesConfig
from liveroom.core.expiry import RoomExpiry
from liveroom.core.sales import Sales
from liveroom.core.session import Session
from liveroom.protocol import frames as F
from liveroom.redis_local import RedisClusterProcesses, RedisProcess
from tests.support import AppHub, Client, HubProcess, eventually, http, token

LOCKS = {K.REAPER_LOCK, K.SWEEP_LOCK}  # short-lived (PX), may or may not be there


@pytest.fixture
async def parts(own_redis: RedisProcess) -> AsyncIterator[tuple[Sales, RoomExpiry, RedisBroker]]:
    cfg = replace(
        Config(),
        redis=RedisConfig(urls=(own_redis.url,)),
        room=RoomConfig(ttl_s=1.0),
        sales=SalesConfig(pay_window_s=0.3, orders_retention_s=1.0),
    )
    broker = RedisBroker(cfg.redis, "bounded-hub", 100)
    await broker.start(BrokerEvents(lambda r, m: None, lambda rooms: None))
    yield Sales(cfg, broker), RoomExpiry(cfg, broker), broker
    await broker.close()


def keys_now(url: str) -> set[str]:
    with redis.Redis.from_url(url) as r:
        return {k.decode() for k in r.scan_iter(count=1000)} - LOCKS


def commands(url: str) -> int:
    """Commands the server ran so far, INFO itself left out."""
    with redis.Redis.from_url(url) as r:
        stats = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def short_room(sales: Sales, broker: RedisBroker, room: str) -> str:
    """One short show: two viewers come and go, a sale with three buys; one order is
    confirmed, one cancelled, one left to expire; the host closes the sale. The unpaid order
    id is returned."""
    host = Session(Identity("host", "Host", "host", (room,)), room, "host")
    await broker.presence_sync(room, ["a", "b"], [], 10_000, {"a": "A", "b": "B"})
    sale = (await sales.create(host, F.SaleCreate("SKU", "Hat", 100, 5, 2, 0, 0)))["sale"]
    orders = []
    for user in ("a", "b", "c"):
        me = Session(Identity(user, user, "viewer", None), room, "viewer")
        orders.append((await sales.buy(me, F.Buy(sale, 1, "k-" + user)))["order"])
    await sales.confirm(orders[0])
    await sales.cancel(orders[1])
    await broker.presence_sync(room, [], ["a", "b"], 10_000)
    await sales.close(host, F.SaleClose(sale))
    return orders[2]


async def run_rooms(sales: Sales, broker: RedisBroker, n: int) -> list[str]:
    rooms = ["br" + uuid.uuid4().hex[:10] for _ in range(n)]
    for i in range(0, n, 100):  # 100 rooms at a time: the broker pipelines their calls
        await asyncio.gather(*(short_room(sales, broker, r) for r in rooms[i : i + 100]))
    return rooms


async def settle(sales: Sales, expiry: RoomExpiry, broker: RedisBroker, url: str, baseline: set[str]) -> None:
    """Reaper and sweeper rounds (as the hubs run them) until Redis is back to `baseline`."""
    registry = broker.registries()[0]

    async def back() -> bool:
        await sales.reap_round(registry)
        await expiry.sweep(registry)
        return keys_now(url) == baseline

    await eventually(back, timeout=30, what="every key of the finished rooms gone")


async def reaper_round_cost(sales: Sales, broker: RedisBroker, url: str) -> int:
    registry = broker.registries()[0]
    sales._trimmed[id(registry)] = time.monotonic()  # the minutely stream trim: not this round
    before = commands(url)
    await sales.reap_round(registry)
    return commands(url) - before


async def test_a_thousand_finished_rooms_leave_nothing_and_cost_the_reaper_nothing(
    parts: tuple[Sales, RoomExpiry, RedisBroker], own_redis: RedisProcess
) -> None:
    """1,000 short rooms (sale, buys, a confirmation, a cancellation, an expiry, viewers come
    and go): once they are over and room.ttl_s (1 s here) has passed, Redis holds exactly the
    keys it held before; and an idle reaper round costs the same with 10 finished rooms
    behind it as with 1,000 (before, it ran one ZRANGEBYSCORE per room that ever sold)."""
    sales, expiry, broker = parts
    url = own_redis.url
    # warm up: one room, so that the shard-wide orders stream exists in the baseline
    await run_rooms(sales, broker, 1)
    await settle(sales, expiry, broker, url, {K.SHARD_ORDERS_STREAM})
    baseline = keys_now(url)

    await run_rooms(sales, broker, 10)
    assert len(keys_now(url)) > len(baseline) + 10 * 5  # the rooms wrote their keys
    await settle(sales, expiry, broker, url, baseline)
    cost_10 = await reaper_round_cost(sales, broker, url)

    rooms = await run_rooms(sales, broker, 1000)
    with redis.Redis.from_url(url) as r:
        assert r.hlen(K.room_keys(rooms[0]).orders) == 3
    assert len(keys_now(url)) > len(baseline) + 1000 * 5
    await settle(sales, expiry, broker, url, baseline)
    cost_1000 = await reaper_round_cost(sales, broker, url)
    assert cost_1000 == cost_10 <= 3, (cost_10, cost_1000)

    # the orders stream got each room's created x3, confirmed, cancelled and expired events
    # (so the unpaid orders did expire first); past its 1 s retention (nobody reads it with a
    # consumer group here) the reaper's trim, once a minute, drops them
    with redis.Redis.from_url(url) as r:
        assert r.xlen(K.SHARD_ORDERS_STREAM) >= 6 * 1000
        await asyncio.sleep(1.1)
        sales._trimmed.clear()  # the minute is up
        await sales.reap_round(broker.registries()[0])
        assert r.xlen(K.SHARD_ORDERS_STREAM) < 500


async def test_a_room_with_a_pending_order_or_a_viewer_is_kept(
    parts: tuple[Sales, RoomExpiry, RedisBroker], own_redis: RedisProcess
) -> None:
    """Over means no viewer and no pending order: a room past its ttl that still has either
    keeps every key; once the last one goes, the room goes after the ttl."""
    sales, expiry, broker = parts
    registry = broker.registries()[0]
    room = "keep" + uuid.uuid4().hex[:8]
    host = Session(Identity("host", "Host", "host", (room,)), room, "host")
    sale = (await sales.create(host, F.SaleCreate("SKU", "Hat", 100, 5, 2, 0, 0)))["sale"]
    me = Session(Identity("u", "u", "viewer", None), room, "viewer")
    order = (await sales.buy(me, F.Buy(sale, 1, "k")))["order"]
    await sales.close(host, F.SaleClose(sale))  # marks the room idle, but an order is pending
    await broker.presence_sync(room, ["v"], [], 10_000)  # and a viewer is here
    await asyncio.sleep(1.2)
    await expiry.sweep(registry)
    assert (await broker.order(room, order)) is not None
    await sales.confirm(order)
    await expiry.sweep(registry)  # the viewer is still here
    assert await broker.room_exists(room)
    await broker.presence_sync(room, [], ["v"], 10_000)
    await expiry.sweep(registry)
    assert await broker.room_exists(room)  # over only just now: kept for the ttl
    await asyncio.sleep(1.2)
    await expiry.sweep(registry)
    assert not await broker.room_exists(room)
    assert not {k for k in keys_now(own_redis.url) if f"{{{room}}}" in k}


async def test_orders_stream_trim_keeps_what_a_group_still_needs(
    parts: tuple[Sales, RoomExpiry, RedisBroker], own_redis: RedisProcess
) -> None:
    """Entries past the retention go, except those a consumer group has not read, or read
    and not acknowledged (the shop backend's, or the webhooks')."""
    _, _, broker = parts
    registry = broker.registries()[0]
    stream = "lr:test-orders:" + uuid.uuid4().hex[:6]
    with redis.Redis.from_url(own_redis.url) as r:
        for i in range(1, 1001):
            r.xadd(stream, {"n": i}, id=f"{i}-0")  # ids as ms: all long past any retention
        r.xgroup_create(stream, "shop", id="0")
        read = r.xreadgroup("shop", "w1", {stream: ">"}, count=600)[0][1]
        r.xack(stream, "shop", *[entry_id for entry_id, _ in read[:400]])  # 401..600 pending
        await broker.orders_trim(registry, stream, int(time.time() * 1000))
        left = [int(entry_id.split(b"-")[0]) for entry_id, _ in r.xrange(stream)]
        assert left[-1] == 1000 and set(range(401, 1001)) <= set(left)  # unacked, unread kept
        assert len(left) < 1000  # acknowledged and old: trimmed (whole stream nodes)
        rest = r.xreadgroup("shop", "w1", {stream: ">"})[0][1]
        r.xack(stream, "shop", *[entry_id for entry_id, _ in read[400:] + rest])
        await broker.orders_trim(registry, stream, int(time.time() * 1000))
        assert r.xlen(stream) < 200
        r.delete(stream)


# -- with a hub ------------------------------------------------------------------------------


def room_keys_in(url: str, room: str) -> set[str]:
    with redis.Redis.from_url(url) as r:
        return {k.decode() for k in r.scan_iter(match=f"lr:{{{room}}}:*", count=1000)}


async def test_a_hubs_room_is_gone_after_its_ttl_and_read_only_requests_write_nothing(
    start_hub, own_redis: RedisProcess  # type: ignore[no-untyped-def]
) -> None:
    """With rooms created on purpose (no implicit rooms) and a 1 s ttl: a room that had
    viewers, comments, likes, a report, a mute, a sale with a confirmed order and a closed
    draw is 404 no_such_room once it has been over for the ttl, and Redis holds none of its
    keys but its ended session's figures. GETs on rooms that do not exist write nothing."""
    hub: HubProcess = start_hub(
        LIVEROOM_REDIS=own_redis.url, LIVEROOM_IMPLICIT_ROOMS="0", LIVEROOM_ROOM_TTL_S="1", LIVEROOM_FRAME_RATE="0",
        LIVEROOM_COMMENT_RATE="0",
    )  # fmt: skip
    room = "ttl" + uuid.uuid4().hex[:8]
    admin, shop = token("admin", role="admin"), token("shop", role="shop", rooms=[room])
    api = f"{hub.base}/api/rooms/{room}"

    ghost = "ghost" + uuid.uuid4().hex[:8]
    before = keys_now(own_redis.url)
    for path in ("", "/sales/s1", "/draws/d1", "/sessions", "/sessions/x1", "/reports", "/words", "/milestones"):
        status, _ = await http("GET", f"{hub.base}/api/rooms/{ghost}{path}", admin)
        assert status == 404, path
    status, _ = await http("GET", f"{hub.base}/api/orders/o{len(ghost)}-{ghost}-s1-1", admin)
    assert status == 404
    assert keys_now(own_redis.url) == before  # nothing written, not even an index entry

    assert (await http("PUT", api, admin, {"title": "Show"}))[0] == 200
    assert (await http("POST", f"{api}/sessions", admin))[0] == 200
    host = await Client.connect(hub.base, room, token("host", role="host", rooms=[room]))
    viewer = await Client.connect(hub.base, room, token("v", name="V"))
    try:
        assert (await viewer.call("comment", text="hello"))["ok"]
        await viewer.send({"t": "like", "n": 5})
        seq = (await viewer.call("comment", text="spam"))["seq"]
        await host.send({"t": "report", "seq": seq, "reason": "spam"})
        assert (await host.call("mute", user="v", seconds=60))["ok"]
        sale = (await host.call("sale_create", sku="A", title="Hat", price=100, stock=3, limit=1))["sale"]
        order = (await viewer.call("buy", sale=sale, qty=1, key="k1"))["order"]
        assert (await http("POST", f"{hub.base}/api/orders/{order}/confirm", shop))[0] == 200
        assert (await host.call("sale_close", sale=sale))["ok"]
        draw = await host.call("draw_start", prize="Mug", winners=1, mode="join", duration_s=1)
        assert draw["ok"]
        assert (await viewer.call("join_draw", draw=draw["draw"]))["ok"]
        await viewer.wait_for(lambda: bool(viewer.of_type("draw_result")), timeout=10, what="the draw's result")
        session = (await http("GET", f"{api}/sessions", admin))[1]["sessions"][0]["session"]
        assert (await http("POST", f"{api}/sessions/{session}/end", admin))[0] == 200
    finally:
        await viewer.close()
        await host.close()
    assert len(room_keys_in(own_redis.url, room)) > 10

    kept = {K.room_keys(room).session(session), K.room_keys(room).session_hll(session), K.room_keys(room).sessions}

    async def gone() -> bool:
        with redis.Redis.from_url(own_redis.url) as r:
            indexed = [m.decode() for key in (K.ROOMS_IDLE, K.ORDERS_DUE) for m in r.zrange(key, 0, -1)]
        return room_keys_in(own_redis.url, room) <= kept and not [m for m in indexed if m.split(" ")[0] == room]

    await eventually(gone, timeout=30, what="the room's keys and index entries gone after its ttl")
    with redis.Redis.from_url(own_redis.url) as r:
        assert r.hget(K.room_keys(room).session(session), "comments") == b"2"  # figures stay
        assert r.pttl(K.room_keys(room).sessions) > 0  # the index of them expires with them
    assert (await http("GET", api, admin))[0] == 404
    with pytest.raises(Exception, match="404"):
        await Client.connect(hub.base, room, token("v"))


async def test_a_hub_whose_viewers_left_leaves_no_presence_behind(
    start_hub, own_redis: RedisProcess  # type: ignore[no-untyped-def]
) -> None:
    """A hub whose viewers of a room all left drops its `hubs` entry and user set at once
    (before, they stayed until another hub reaped them as dead, or for ever)."""
    env = {"LIVEROOM_REDIS": own_redis.url, "LIVEROOM_HUB_TTL_MS": "60000"}
    one, two = start_hub(**env), start_hub(**env)
    left = "left" + uuid.uuid4().hex[:8]
    k = K.room_keys(left)
    c = await Client.connect(one.base, left, token("u"))
    stays = await Client.connect(two.base, left, token("w"))  # someone is still watching
    try:
        with redis.Redis.from_url(own_redis.url) as r:

            async def registered() -> bool:
                return r.hlen(k.hubs) == 2 and r.hlen(k.ref) == 2

            await eventually(registered, what="both viewers counted")
            await c.close()

            async def hub_gone() -> bool:
                hu = [key for key in room_keys_in(own_redis.url, left) if ":hu:" in key]
                return r.hlen(k.hubs) == 1 and len(hu) == 1 and r.hlen(k.ref) == 1

            await eventually(hub_gone, timeout=8, what="the first hub's entry and user set gone")
    finally:
        await stays.close()


async def test_a_room_whose_only_hub_died_is_swept(
    start_hub, own_redis: RedisProcess  # type: ignore[no-untyped-def]
) -> None:
    """A room whose only hub was killed (so nobody saw its viewers leave) is still swept,
    by another hub, once the dead hub's heartbeat has expired and the ttl has passed."""
    env = {"LIVEROOM_REDIS": own_redis.url, "LIVEROOM_ROOM_TTL_S": "1", "LIVEROOM_HUB_TTL_MS": "1000"}
    one, two = start_hub(**env), start_hub(**env)
    killed = "dead" + uuid.uuid4().hex[:8]
    with redis.Redis.from_url(own_redis.url) as r:
        d = await Client.connect(one.base, killed, token("u"))

        async def counted() -> bool:
            return bool(r.hlen(K.room_keys(killed).ref))

        await eventually(counted, what="the viewer counted")
        one.kill()
        await d.close()
        assert r.hlen(K.room_keys(killed).ref) == 1  # nobody saw the viewer go

        async def swept() -> bool:
            return not room_keys_in(own_redis.url, killed)

        await eventually(swept, timeout=30, what="the dead hub's room swept by the other hub")
    assert two.log().count("Traceback") == 0


async def test_history_is_trimmed_and_a_resume_past_it_is_not_recovered(
    app_hub: Callable[..., Awaitable[AppHub]], redis1: RedisProcess
) -> None:
    """The history holds about LIVEROOM_HISTORY_LEN events (whole stream nodes of 100 are
    trimmed); a viewer resuming from before what it holds gets `recovered: false` and the
    room's state, one resuming from within it gets the events it missed."""
    h = await app_hub(LIVEROOM_HISTORY_LEN="10")
    room = "hist" + uuid.uuid4().hex[:8]
    talker = await Client.connect(h.base, room, token("t"))
    try:
        epoch = talker.welcome["epoch"]
        for i in range(260):
            assert (await talker.call("comment", text=f"c{i}"))["ok"]
        with redis.Redis.from_url(redis1.url) as r:
            held = r.xlen(K.room_keys(room).hist)
        assert 10 <= held <= 110, held
        last = talker.welcome["seq"] + 260
        old = await Client.connect(h.base, room, token("v"), since=1, epoch=epoch)
        assert old.welcome["recovered"] is False and old.welcome["seq"] == last
        await old.close()
        recent = await Client.connect(h.base, room, token("v"), since=last - 5, epoch=epoch)
        assert recent.welcome["recovered"] is True
        await recent.wait_for(lambda: len(recent.of_type("comment")) == 5, what="the 5 missed comments")
        await recent.close()
    finally:
        await talker.close()


async def test_a_join_reads_only_the_sales_that_may_take_buys(
    parts: tuple[Sales, RoomExpiry, RedisBroker],
) -> None:
    """A room that held many sales: the welcome's state carries the open ones only, read from
    the room's open-sales set (a closed sale, or one past its end once the reaper saw it,
    leaves it), not the whole sales hash."""
    sales, _, broker = parts
    room = "many" + uuid.uuid4().hex[:8]
    host = Session(Identity("host", "Host", "host", (room,)), room, "host")
    ids = [(await sales.create(host, F.SaleCreate("S", "t", 100, 5, 1, 0, 0)))["sale"] for _ in range(30)]
    for sale in ids[:29]:
        await sales.close(host, F.SaleClose(sale))
    ended = (await sales.create(host, F.SaleCreate("S", "t", 100, 5, 1, 0, int(time.time() * 1000) + 300)))["sale"]
    assert {s.id for s in (await broker.state(room)).sales} == {ids[29], ended}
    await asyncio.sleep(0.4)
    await sales.reap_round(broker.registries()[0])  # the reaper sees it ended
    assert [s.id for s in (await broker.state(room)).sales] == [ids[29]]
    assert (await sales.sale(room, ids[0]))["status"] == "closed"  # still readable by id


async def test_on_a_cluster_a_finished_room_is_gone_after_its_ttl(
    start_hub, cluster3: RedisClusterProcesses  # type: ignore[no-untyped-def]
) -> None:
    """The same on a Redis Cluster: the due-order and idle indexes live in slots of their own,
    room_drop.lua deletes the room's keys (its own orders stream too) on the room's node, once
    no consumer group of that stream still needs an entry."""
    h = start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url, LIVEROOM_ROOM_TTL_S="1", LIVEROOM_FRAME_RATE="0")
    room = "cttl" + uuid.uuid4().hex[:8]
    host = await Client.connect(h.base, room, token("host", role="host", rooms=[room]))
    try:
        sale = (await host.call("sale_create", sku="A", title="Hat", price=100, stock=3, limit=1))["sale"]
        order = (await host.call("buy", sale=sale, qty=1, key="k1"))["order"]
        assert (await http("POST", f"{h.base}/api/orders/{order}/cancel", token("shop", role="shop", rooms=[room])))[0] == 200
        assert (await host.call("sale_close", sale=sale))["ok"]
    finally:
        await host.close()
    rc = redis.RedisCluster.from_url(cluster3.url)
    try:
        k = K.room_keys(room)
        assert rc.exists(k.meta, k.sales, k.idem(sale), k.room_orders_stream) == 4
        # a consumer group that has not read the room's orders stream keeps the room
        rc.xgroup_create(k.room_orders_stream, "shop", id="0")
        await asyncio.sleep(3)  # the ttl (1 s) and a few sweeps
        assert rc.exists(k.meta, k.room_orders_stream) == 2
        got = rc.xreadgroup("shop", "w", {k.room_orders_stream: ">"})[0][1]
        rc.xack(k.room_orders_stream, "shop", *[entry_id for entry_id, _ in got])  # read and acknowledged

        async def gone() -> bool:
            return not rc.exists(k.meta, k.sales, k.idem(sale), k.bought(sale), k.room_orders_stream, k.hist, k.orders)

        await eventually(gone, timeout=30, what="the room's keys gone from the cluster")
    finally:
        rc.close()


async def test_the_reaper_takes_over_what_an_older_version_indexed(
    parts: tuple[Sales, RoomExpiry, RedisBroker], own_redis: RedisProcess
) -> None:
    """A room an older version listed in SALE_ROOMS (its sale in no due index, not in
    sales:open): the first round indexes its sales, so its unpaid order still expires and a
    join lists its open sale; SALE_ROOMS is gone after."""
    sales, _, broker = parts
    room = "old" + uuid.uuid4().hex[:8]
    host = Session(Identity("host", "Host", "host", (room,)), room, "host")
    sale = (await sales.create(host, F.SaleCreate("S", "t", 100, 5, 2, 0, 0)))["sale"]
    me = Session(Identity("u", "u", "viewer", None), room, "viewer")
    order = (await sales.buy(me, F.Buy(sale, 1, "k")))["order"]
    with redis.Redis.from_url(own_redis.url) as r:
        r.zrem(K.ORDERS_DUE, f"{room} {sale}")  # as an older version left it
        r.delete(K.room_keys(room).sales_open)
        r.sadd(K.SALE_ROOMS, room, "bad room\n")
        assert (await broker.state(room)).sales == []
        await asyncio.sleep(0.4)  # the order's pay window (0.3 s) is over
        sales._migrated.clear()  # a hub started on the older version's data
        await sales.reap_round(broker.registries()[0])
        assert not r.exists(K.SALE_ROOMS)
    assert json.loads((await broker.order(room, order)) or b"{}")["status"] == "expired"
    assert [s.id for s in (await broker.state(room)).sales] == [sale]
