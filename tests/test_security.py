"""The security issue's attacks (docs/security.md), each refused: rooms exist on purpose, the
shop role alone settles orders, tokens end on open sockets, identifiers and display names are
clean, and the sale scripts are all or nothing. Real Redis, real hubs, real sockets."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

import aiohttp
import msgpack
import redis.asyncio as aioredis

from liveroom.broker import keys as K
from liveroom.redis_local import RedisProcess
from liveroom.web.app import WS
from tests.support import AppHub, Client, http, t, token

EXPLICIT = {"LIVEROOM_IMPLICIT_ROOMS": "0"}  # the production default: rooms are created first
StartApp = Callable[..., Awaitable[AppHub]]


def rid(prefix: str = "sec") -> str:
    return prefix + uuid.uuid4().hex[:10]



async def ws_refusal(base: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The HTTP answer (status, JSON body) to an upgrade refused before it happens."""
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/ws", params=params, headers=headers) as r:
            return r.status, await r.json()


ROUND_LOCKS = {K.REAPER_LOCK.encode(), K.SWEEP_LOCK.encode()}


async def keys_outside_reaper(r: aioredis.Redis) -> set[bytes]:
    """Every key, but the order reaper's keys and the short locks of the rounds every hub
    runs (they come and go on their own: the room sweeper's lock once made this flaky)."""
    return {k async for k in r.scan_iter(count=1000) if not k.startswith(b"lr:{sales}") and k not in ROUND_LOCKS}


async def room_dump(r: aioredis.Redis, room: str) -> dict[bytes, bytes | None]:
    """Every key of a room and its serialized value: equal dumps, nothing written."""
    return {k: await r.dump(k) async for k in r.scan_iter(match=f"lr:{{{room}}}:*", count=1000)}


# -- 1. rooms exist on purpose ---------------------------------------------------------------


async def test_invented_rooms_write_nothing(app_hub: StartApp, redis1: RedisProcess) -> None:
    """200 invented room ids joined by an anonymous client: 404 no_such_room before the
    upgrade, and not one key more in Redis; reading a room's stats writes nothing either."""
    h = await app_hub(**EXPLICIT)
    r = aioredis.Redis.from_url(redis1.url)
    try:
        before = await keys_outside_reaper(r)
        size = await r.dbsize()
        async with aiohttp.ClientSession() as s:

            async def join(room: str) -> int:
                try:
                    async with s.ws_connect(h.base + "/ws", params={"room": room}):
                        return 101
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status

            statuses = await asyncio.gather(*(join(rid("inv")) for _ in range(200)))
        assert statuses == [404] * 200
        status, body = await ws_refusal(h.base, {"room": rid("inv")})
        assert status == 404 and body["error"]["code"] == "no_such_room"
        admin = token("root", role="admin")
        status, body = await http("GET", f"{h.base}/api/rooms/{rid('inv')}", admin)
        assert status == 404 and body["error"]["code"] == "no_such_room"
        # a host op on a room that does not exist: refused too, nothing written
        ghost = rid("inv")
        status, body = await http("POST", f"{h.base}/api/rooms/{ghost}/notices", token("h", role="host", rooms=[ghost]),
                                  {"text": "hi"})
        assert status == 404 and body["error"]["code"] == "no_such_room"
        assert await keys_outside_reaper(r) == before
        assert await r.dbsize() - size in (0, 1, -1)  # +-1: only the reaper's lock may come or go
    finally:
        await r.aclose()


async def test_created_room_joins(app_hub: StartApp, redis1: RedisProcess) -> None:
    """PUT /api/rooms/{room}: by a host of the room or an admin only; idempotent (PUT again
    updates the title); GET then shows the title and writes nothing; the room joins fine."""
    h = await app_hub(**EXPLICIT)
    room = rid()
    url = f"{h.base}/api/rooms/{room}"
    host = token("anna", role="host", rooms=[room])
    status, body = await http("PUT", url, token("v"), {"title": "mine"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await http("PUT", url, token("other", role="host", rooms=["elsewhere"]), {"title": "mine"})
    assert status == 403
    status, body = await http("PUT", url, host, {"title": ""})
    assert status == 400 and body["error"]["code"] == "bad_field"
    status, body = await http("PUT", url, host, {"title": "x", "owner": "me"})
    assert status == 400 and body["error"]["code"] == "bad_field"

    status, body = await http("PUT", url, host, {"title": "Spring\u202e sale\n"})
    assert status == 200 and body["created"] is True and body["title"] == "Spring sale"
    r = aioredis.Redis.from_url(redis1.url)
    try:
        before = await room_dump(r, room)
        status, body = await http("GET", url, host)
        assert status == 200 and body["title"] == "Spring sale" and body["online"] == 0
        assert await room_dump(r, room) == before  # a GET writes nothing, not even an epoch
    finally:
        await r.aclose()
    status, body = await http("PUT", url, token("root", role="admin"), {"title": "Autumn sale", "description": "d"})
    assert status == 200 and body["created"] is False
    status, body = await http("GET", url, host)
    assert body["title"] == "Autumn sale" and body["description"] == "d"

    c = await Client.connect(h.base, room, token("bob"))
    try:
        assert c.welcome["room"] == room
        status, body = await http("POST", f"{url}/notices", host, {"text": "welcome"})
        assert status == 200
    finally:
        await c.close()


async def test_implicit_rooms_keep_todays_behaviour(app_hub: StartApp) -> None:
    h = await app_hub(LIVEROOM_IMPLICIT_ROOMS="1")
    c = await Client.connect(h.base, rid(), None)
    await c.close()


# -- 2. the shop role ------------------------------------------------------------------------


async def test_only_the_shop_settles_orders(app_hub: StartApp) -> None:
    """A host cannot mark an order paid or cancel it: 403 forbidden; the shop (for its
    rooms, or all rooms without a `rooms` claim) and admin can."""
    h = await app_hub()
    room = rid()
    host_tok = token("anna", role="host", rooms=[room])
    host = await Client.connect(h.base, room, host_tok)
    buyer = await Client.connect(h.base, room, token("dan"))
    try:
        r = await host.call("sale_create", sku="S", title="Jacket", price=2500, stock=5, limit=3)
        assert r["ok"], r
        o1 = (await buyer.call("buy", sale=r["sale"], qty=1, key="k1"))["order"]
        o2 = (await buyer.call("buy", sale=r["sale"], qty=1, key="k2"))["order"]
        for verb in ("confirm", "cancel"):
            status, body = await http("POST", f"{h.base}/api/orders/{o1}/{verb}", host_tok)
            assert status == 403 and body["error"]["code"] == "forbidden", (verb, body)
        other_shop = token("shop2", role="shop", rooms=["elsewhere"])
        status, body = await http("POST", f"{h.base}/api/orders/{o1}/confirm", other_shop)
        assert status == 403
        status, body = await http("POST", f"{h.base}/api/orders/{o1}/confirm", token("shop1", role="shop", rooms=[room]))
        assert status == 200 and body["status"] == "confirmed"
        status, body = await http("POST", f"{h.base}/api/orders/{o2}/cancel", token("shop-all", role="shop"))
        assert status == 200 and body["status"] == "cancelled"
        status, body = await http("GET", f"{h.base}/api/orders/{o1}", host_tok)  # a host may read them
        assert status == 200 and body["order"]["status"] == "confirmed"
        # an order id whose embedded room is empty or bad does not skip the room check
        for bad in ("o0--s1-1", f"o{len(room)}-{room[:-1]}\n-s1-1", "o3-a b-s1-1"):
            for tok in (host_tok, token("shop-all", role="shop"), token("root", role="admin")):
                status, body = await http("POST", f"{h.base}/api/orders/{bad}/confirm", tok)
                assert status == 404 and body["error"]["code"] == "no_such_order", (bad, body)
    finally:
        await host.close()
        await buyer.close()


def test_cli_makes_shop_tokens() -> None:
    import subprocess
    import sys

    import jwt

    out = subprocess.run(
        [sys.executable, "-m", "liveroom", "token", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "shop" in out
    from tests.support import SECRET

    res = subprocess.run(
        [sys.executable, "-m", "liveroom", "token", "--secret", SECRET, "--sub", "backend", "--role", "shop"],
        capture_output=True, text=True, check=True,
    )
    claims = jwt.decode(res.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["role"] == "shop" and claims["sub"] == "backend"


# -- 3. tokens end on open sockets -----------------------------------------------------------


async def test_expired_token_gets_bye(app_hub: StartApp) -> None:
    """A socket whose token expires gets `bye expired` (reconnect: true, close 4001) from the
    hub-wide heartbeat sweep, within a few seconds, though it is silent."""
    h = await app_hub()
    c = await Client.connect(h.base, rid(), token("eve", ttl_s=2))
    try:
        await c.wait_for(lambda: c.last_frame("bye") is not None, timeout=t(6), what="bye expired")
        bye = c.last_frame("bye")
        assert bye == {"t": "bye", "reason": "expired", "reconnect": True}
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert c.ws.close_code == 4001
    finally:
        await c.close()


async def test_ops_after_exp_are_refused_before_the_sweep(app_hub: StartApp) -> None:
    """With the sweep stopped, a frame sent after `exp` still gets `bye expired`, not a run."""
    h = await app_hub()
    await h.app[WS].stop()  # no sweep: only the per-frame check can end the socket
    room = rid()
    watcher = await Client.connect(h.base, room, token("w"))
    c = await Client.connect(h.base, room, token("eve", ttl_s=1))
    try:
        await asyncio.sleep(1.2)  # `exp` is whole seconds: past it by now
        await c.send({"t": "comment", "id": 1, "text": "after my token ended"})
        await c.wait_for(lambda: c.last_frame("bye") is not None, timeout=t(5), what="bye expired")
        assert c.last_frame("bye") == {"t": "bye", "reason": "expired", "reconnect": True}
        assert 1 not in c.replies
        await asyncio.sleep(0.3)
        assert not [e for e in watcher.events if e.get("type") == "comment"]
    finally:
        await c.close()
        await watcher.close()


# -- 4. identifiers and display names --------------------------------------------------------


async def test_display_names_arrive_clean(app_hub: StartApp) -> None:
    """CR/LF, ANSI escapes, a bidi override and zero-width characters in a token's `name`
    never reach other viewers: the name is cleaned like comment text."""
    h = await app_hub()
    room = rid()
    viewer = await Client.connect(h.base, room, token("v1"))
    evil = await Client.connect(h.base, room, token("eve", name="Eve\r\n\x1b[31mADMIN\u202e\u200b\u2066x\t  y" + "z" * 100))
    ghost = await Client.connect(h.base, room, token("g-1", name="\u200b\u202e\x1b\n"))
    clean = ("Eve [31mADMINx y" + "z" * 100)[:64]
    try:
        assert evil.welcome["user"]["name"] == clean
        assert ghost.welcome["user"]["name"] == "g-1"  # nothing left: the user id
        assert (await evil.call("comment", text="hello"))["ok"]
        await viewer.wait_for(lambda: any(e.get("type") == "comment" for e in viewer.events), timeout=t(5))
        ev = next(e for e in viewer.events if e.get("type") == "comment")
        name = ev["user"]["name"]
        assert name == clean and len(name) == 64
        assert not any(ch in name for ch in "\r\n\x1b\u202e\u200b\u2066\t")
    finally:
        for c in (viewer, evil, ghost):
            await c.close()


async def test_bad_identifiers_are_refused(app_hub: StartApp) -> None:
    """`demo\\n` is no room; a `sub` outside the safe set is no user."""
    h = await app_hub()
    for room in ("demo\n", "demo\r", "de mo", "demo\x00", "x" * 65):
        status, body = await ws_refusal(h.base, {"room": room})
        assert status == 400 and body["error"]["code"] == "bad_room", room
    status, body = await http("GET", f"{h.base}/api/rooms/demo%0A", token("root", role="admin"))
    assert status == 400 and body["error"]["code"] == "bad_room"
    for sub in ("eve\n", "a b", "<script>", "ev\u202ee", "x" * 129, "{room}"):
        status, body = await ws_refusal(h.base, {"room": "demo", "token": token(sub)})
        assert status == 401 and body["error"]["code"] == "bad_token", sub
    c = await Client.connect(h.base, rid(), token("user@example.com:42_a-b"))
    await c.close()


# -- 5. scripts are all or nothing -----------------------------------------------------------


async def test_sale_numbers_are_bounded_at_the_edge(app_hub: StartApp) -> None:
    h = await app_hub()
    room = rid()
    host = token("anna", role="host", rooms=[room])
    url = f"{h.base}/api/rooms/{room}/sales"
    base = {"sku": "S", "title": "T", "stock": 10, "limit": 1}
    for fields in ({"price": 2**53}, {"price": 10**10 + 1}, {"price": 10**10, "limit": 10**6}, {"stock": 10**7 + 1}):
        status, body = await http("POST", url, host, {**base, "price": 100, **fields})
        assert status == 400 and body["error"]["code"] == "bad_field", (fields, body)
    status, body = await http("POST", url, host, {**base, "price": 10**10, "limit": 900_000})
    assert status == 200, body


async def test_refused_buy_writes_nothing(app_hub: StartApp, redis1: RedisProcess) -> None:
    """A sale holding a price the edge no longer allows (2^53: stored before the bounds, or
    by anything else that writes Redis): the buy is refused before the first write, the
    room's keys are byte for byte what they were, and a retry with the same key gets the same
    answer. Before, the order went through at an amount past exact integers (and a larger
    one fails HINCRBY halfway, after the stock is taken: Redis does not roll a script back)."""
    h = await app_hub()
    room = rid()
    host = await Client.connect(h.base, room, token("anna", role="host", rooms=[room]))
    buyer = await Client.connect(h.base, room, token("dan"))
    r = aioredis.Redis.from_url(redis1.url)
    try:
        sale = (await host.call("sale_create", sku="S", title="T", price=100, stock=10, limit=5))["sale"]
        sales_key = f"lr:{{{room}}}:sales"
        info = msgpack.unpackb(await r.hget(sales_key, f"{sale}:info"))
        await r.hset(sales_key, f"{sale}:info", msgpack.packb({**info, "price": 2**53}))
        before = await room_dump(r, room)
        first = await buyer.call("buy", sale=sale, qty=1, key="same")
        assert first["ok"] is False and first["error"]["code"] == "bad_field", first
        assert await room_dump(r, room) == before
        again = await buyer.call("buy", sale=sale, qty=1, key="same")
        assert again["error"] == first["error"]
        assert await room_dump(r, room) == before
        assert int(await r.hget(sales_key, f"{sale}:stock")) == 10
    finally:
        await r.aclose()
        await host.close()
        await buyer.close()
