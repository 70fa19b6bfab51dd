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

from liveroom.redis_local import RedisProcess
from liveroom.web.app import WS
from tests.support import AppHub, Client, t, token

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
