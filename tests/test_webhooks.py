"""Order webhooks (liveroom/webhooks.py, docs/shop.md): every order event reaches a real
HTTP receiver that fails now and then, signed, at least once; none is lost across a hub
restart. Real Redis, real hub processes, a real aiohttp receiver in the test."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
import redis
from aiohttp import web

from liveroom import webhooks
from liveroom.broker.sharding import shard_of
from liveroom.config import WebhooksConfig
from liveroom.redis_local import RedisProcess, free_port
from tests.support import ROOT, Client, HubProcess, eventually, t, token

WSECRET = "whsec-test-0123456789"


def check_signature(secret: str, headers: Any, body: bytes) -> bool:
    """The receiver's check exactly as docs/shop.md writes it."""
    ts = headers["X-Liveroom-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Liveroom-Signature"]) and abs(time.time() - int(ts)) < 300


@dataclass
class Receiver:
    """The shop's endpoint: every third request answers 500, the second one answers too
    late (the hub's timeout is 0.5 s), and `down` answers 503 to everything."""

    url: str = ""
    down: bool = False
    requests: int = 0
    slept: bool = False
    bad: list[bytes] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # dedup keys of every request
    delivered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # answered 200 in time
    failures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        n = self.requests
        if not check_signature(WSECRET, request.headers, body):
            self.bad.append(body)
            return web.Response(status=401)
        p = json.loads(body)
        assert request.headers["X-Liveroom-Delivery"] == p["id"] == f"{p['order']}:{p['event']}"
        assert request.headers["X-Liveroom-Event"] == p["event"]
        self.seen.add(p["id"])
        if self.down or n % 3 == 0:
            self.failures += 1
            return web.Response(status=503 if self.down else 500)
        if n == 2 and not self.slept:
            self.slept = True
            self.failures += 1
            await asyncio.sleep(t(1))  # the hub (timeout 0.5 s) has given up on this one: it must retry
            return web.Response(status=200)
        self.delivered.setdefault(p["id"], []).append(p)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/hooks"
    yield rec
    await runner.cleanup()


def hook_env(redis_url: str, rec: Receiver, group: str) -> dict[str, str]:
    return {
        "LIVEROOM_REDIS": redis_url,
        "LIVEROOM_FRAME_RATE": "0",
        "LIVEROOM_COMMENT_RATE": "0",
        "LIVEROOM_PAY_WINDOW_S": str(t(2)),
        "LIVEROOM_WEBHOOK_URL": rec.url,
        "LIVEROOM_WEBHOOK_SECRET": WSECRET,
        "LIVEROOM_WEBHOOK_GROUP": group,  # a group of the test's own on the session's shard
        "LIVEROOM_WEBHOOK_TIMEOUT_S": "0.5",
        "LIVEROOM_WEBHOOK_RETRY_BASE_S": "0.1",
        "LIVEROOM_WEBHOOK_RETRY_MAX_S": "0.5",
        "LIVEROOM_WEBHOOK_CLAIM_IDLE_S": "1.5",  # > retry_max_s + timeout_s
    }


async def open_sale(base: str, room: str) -> str:
    host = await Client.connect(base, room, token("shop", role="host", rooms=[room]))
    try:
        r = await host.call("sale_create", sku="SKU-9", title="Scarf", price=1990, stock=20, limit=1)
        assert r["ok"], r
        return str(r["sale"])
    finally:
        await host.close()


async def buy(base: str, room: str, sale: str, user: str) -> str:
    c = await Client.connect(base, room, token(user))
    try:
        r = await c.call("buy", sale=sale, qty=1, key=f"{user}-1")
        assert r["ok"], r
        return str(r["order"])
    finally:
        await c.close()


async def order_op(base: str, room: str, order: str, op: str) -> None:
    shop = token("shop", role="shop", rooms=[room])  # confirm and cancel are the shop's
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {shop}"}) as s:
        async with s.post(f"{base}/api/orders/{order}/{op}") as resp:
            assert resp.status == 200, await resp.text()


def pending(redis_url: str, group: str) -> int:
    r = redis.Redis.from_url(redis_url)
    try:
        return int(r.xpending("lr:orders", group)["pending"])
    finally:
        r.close()


async def test_every_order_event_delivered_signed_across_a_restart(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess, receiver: Receiver
) -> None:
    group = "wh-" + uuid.uuid4().hex[:8]
    env = hook_env(redis1.url, receiver, group)
    a = start_hub(**env)
    room = "hook" + uuid.uuid4().hex[:8]
    sale = await open_sale(a.base, room)

    # three buys; one confirmed, one cancelled, one left to expire
    o1, o2, o3 = [await buy(a.base, room, sale, f"u{i}") for i in (1, 2, 3)]
    await order_op(a.base, room, o1, "confirm")
    await order_op(a.base, room, o2, "cancel")
    want = {f"{o1}:created", f"{o2}:created", f"{o3}:created", f"{o1}:confirmed", f"{o2}:cancelled", f"{o3}:expired"}
    await eventually(lambda: want <= receiver.delivered.keys(), timeout=15, what="the six order events")
    assert receiver.slept and receiver.failures >= 2  # the receiver did fail, and it was retried
    assert not receiver.bad
    created = receiver.delivered[f"{o1}:created"][0]
    assert created["room"] == room and created["sale"] == sale and created["user"] == "u1"
    assert created["qty"] == 1 and created["amount"] == 1990 and created["sku"] == "SKU-9"
    assert isinstance(created["ts"], int)
    await eventually(lambda: pending(redis1.url, group) == 0, timeout=5, what="all acknowledged")

    # the receiver goes down; hub A reads the next events, fails them, and is stopped
    receiver.down = True
    o4, o5 = [await buy(a.base, room, sale, f"u{i}") for i in (4, 5)]
    await order_op(a.base, room, o4, "confirm")
    later = {f"{o4}:created", f"{o5}:created", f"{o4}:confirmed"}
    await eventually(lambda: later <= receiver.seen, timeout=10, what="hub A trying the new events")
    a.stop()
    assert pending(redis1.url, group) >= 3  # read, not delivered: still pending

    # another hub takes them over (idle past claim_idle_s) once the receiver is back
    receiver.down = False
    start_hub(**env)
    later.add(f"{o5}:expired")  # expired by hub B's reaper or A's, delivered all the same
    await eventually(lambda: later <= receiver.delivered.keys(), timeout=15, what="pending events after the restart")
    await eventually(lambda: pending(redis1.url, group) == 0, timeout=5, what="all acknowledged after the restart")
    assert not receiver.bad
    ours = {k for k in receiver.delivered if k.startswith(tuple(f"{o}:" for o in (o1, o2, o3, o4, o5)))}
    assert ours == want | later


async def test_the_webhooks_command_two_shards(
    start_hub: Callable[..., HubProcess], shards2: list[RedisProcess], receiver: Receiver
) -> None:
    """`liveroom webhooks` delivers for hubs that leave it to it (webhooks.in_hubs = false),
    from both shards' orders streams (on Redis and on Valkey: shards2 runs both)."""
    group = "wh-" + uuid.uuid4().hex[:8]
    urls = ",".join(p.url for p in shards2)
    env = {**hook_env(urls, receiver, group), "LIVEROOM_WEBHOOK_IN_HUBS": "0"}
    h = start_hub(**env)
    proc = subprocess.Popen([sys.executable, "-m", "liveroom", "webhooks"], env={**os.environ, **env}, cwd=ROOT)
    try:
        # the groups exist once the command has started (created at `$`): wait for them
        def has_groups() -> bool:
            for p in shards2:
                r = redis.Redis.from_url(p.url)
                try:
                    if not r.exists("lr:orders") or not any(g["name"] == group.encode() for g in r.xinfo_groups("lr:orders")):
                        return False
                finally:
                    r.close()
            return True

        await eventually(has_groups, timeout=10, what="the command's consumer groups")
        rooms: dict[int, str] = {}
        while len(rooms) < 2:  # a room on each shard
            r_ = "hook" + uuid.uuid4().hex[:8]
            rooms.setdefault(shard_of(r_, 2), r_)
        want = set()
        for room in rooms.values():
            sale = await open_sale(h.base, room)
            o = await buy(h.base, room, sale, "cmd1")
            await order_op(h.base, room, o, "cancel")
            want |= {f"{o}:created", f"{o}:cancelled"}
        await eventually(lambda: want <= receiver.delivered.keys(), timeout=10, what="events of both shards")
        assert not receiver.bad
    finally:
        proc.terminate()
        assert proc.wait(t(10)) == 0


async def test_stopped_consumers_are_forgotten(redis1: RedisProcess) -> None:
    """A consumer holding nothing pending and idle long enough leaves the group; one that
    holds an entry, and the caller, stay."""
    import redis.asyncio as aioredis

    stream = "lr:test-forget-" + uuid.uuid4().hex[:8]
    cfg = WebhooksConfig(url="http://127.0.0.1:9/", secret="s", group="g")
    r = aioredis.Redis.from_url(redis1.url)
    try:
        async with aiohttp.ClientSession() as http:
            w = webhooks.StreamWorker(cfg, r, stream, "me", http)
            await w.ensure_group()
            await r.xgroup_createconsumer(stream, "g", "idle-empty")
            await r.xadd(stream, {"event": "created", "order": "o1"})
            await r.xreadgroup("g", "idle-holding", {stream: ">"}, count=1)
            await r.xgroup_createconsumer(stream, "g", "me")  # as idle, but the caller
            await asyncio.sleep(0.3)
            assert await w.forget_gone(min_idle_ms=200) == 1
            names = {c["name"] for c in await r.xinfo_consumers(stream, "g")}
            assert names == {b"idle-holding", b"me"}
    finally:
        await r.delete(stream)
        await r.aclose()


def test_signature_backoff_payload() -> None:
    body = b'{"id":"o1:created"}'
    sig = webhooks.sign("k", "1700000000", body)
    assert sig == "sha256=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.verify("k", "1700000000", body, sig, now=1700000010)
    assert not webhooks.verify("k", "1700000000", body, sig, now=1700001000)  # replayed too late
    assert not webhooks.verify("k", "1700000000", body + b" ", sig, now=1700000010)
    rnd = random.Random(1)
    delays = [webhooks.backoff(n, 0.5, 30, rnd) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(15 <= d <= 30 for d in delays[7:])  # capped, with jitter
    p = webhooks.payload("lr:orders", "1-0", {b"event": b"created", b"order": b"o1-r-s-1", b"qty": b"2", b"amount": b"100", b"ts": b"5"})
    assert p == {"event": "created", "order": "o1-r-s-1", "qty": 2, "amount": 100, "ts": 5, "id": "o1-r-s-1:created", "stream": "lr:orders", "entry": "1-0"}


async def test_cluster_rooms_streams_delivered_by_hubs(
    start_hub: Callable[..., HubProcess], cluster3: Any, receiver: Receiver
) -> None:
    """On a Redis Cluster every room has its own orders stream: the hubs find each room's
    stream (also one that appears after they started) and deliver its events, at least once,
    while the receiver fails now and then."""
    group = "wh-" + uuid.uuid4().hex[:8]
    env = {**hook_env("", receiver, group), "LIVEROOM_REDIS_CLUSTER": cluster3.url}
    del env["LIVEROOM_REDIS"]
    hubs = [start_hub(**env) for _ in range(2)]
    want: set[str] = set()
    rooms = ["hookc" + uuid.uuid4().hex[:8] for _ in range(3)]  # on different masters, most likely
    for i, room in enumerate(rooms):
        h = hubs[i % 2]
        sale = await open_sale(h.base, room)
        o1 = await buy(h.base, room, sale, "c1")
        o2 = await buy(h.base, room, sale, "c2")
        await order_op(h.base, room, o1, "confirm")
        await order_op(h.base, room, o2, "cancel")
        want |= {f"{o1}:created", f"{o2}:created", f"{o1}:confirmed", f"{o2}:cancelled"}
    await eventually(lambda: want <= receiver.delivered.keys(), timeout=20, what="every room's order events")
    assert receiver.failures >= 1 and not receiver.bad

    def pending_everywhere() -> int:
        import redis.cluster

        c = redis.cluster.RedisCluster.from_url(cluster3.url)
        try:
            return sum(int(c.xpending(f"lr:{{{r}}}:orders:stream", group)["pending"]) for r in rooms)
        finally:
            c.close()

    await eventually(lambda: pending_everywhere() == 0, timeout=10, what="every entry acknowledged")
    for h in hubs:
        assert "Traceback" not in h.log(), h.log()
