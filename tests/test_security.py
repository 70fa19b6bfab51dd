"""The security issue's attacks (docs/security.md), each refused: rooms exist on purpose, the
shop role alone settles orders, tokens end on open sockets, identifiers and display names are
clean, and the sale scripts are all or nothing. Real Redis, real hubs, real sockets."""

from __future__ import annotations

import uuid
from typing import Any, Awaitable, Callable

import aiohttp
import msgpack
import redis.asyncio as aioredis

from liveroom.redis_local import RedisProcess
from tests.support import AppHub, Client, token

EXPLICIT = {"LIVEROOM_IMPLICIT_ROOMS": "0"}  # the production default: rooms are created first
StartApp = Callable[..., Awaitable[AppHub]]


def rid(prefix: str = "sec") -> str:
    return prefix + uuid.uuid4().hex[:10]


async def http(method: str, url: str, tok: str | None, body: Any = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, json=body, headers=headers) as r:
            return r.status, await r.json()


async def ws_refusal(base: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The HTTP answer (status, JSON body) to an upgrade refused before it happens."""
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/ws", params=params, headers=headers) as r:
            return r.status, await r.json()


async def keys_outside_reaper(r: aioredis.Redis) -> set[bytes]:
    """Every key, but the order reaper's short lock (it comes and goes on its own)."""
    return {k async for k in r.scan_iter(count=1000) if not k.startswith(b"lr:{sales}")}


async def room_dump(r: aioredis.Redis, room: str) -> dict[bytes, bytes | None]:
    """Every key of a room and its serialized value: equal dumps, nothing written."""
    return {k: await r.dump(k) async for k in r.scan_iter(match=f"lr:{{{room}}}:*", count=1000)}


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
