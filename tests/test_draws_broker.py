"""The close's guarantees on a real Redis, through two brokers standing for two hubs (no
sockets): a claim is a lease another hub takes over when it runs out, a result is stored
once, big entrant sets are read in chunks, and exclude_winners keeps past winners out."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import replace
from typing import AsyncIterator

import msgpack
import pytest
import redis

from liveroom.auth import Identity
from liveroom.broker.base import BrokerEvents
from liveroom.broker.redis import RedisBroker
from liveroom.config import Config, RedisConfig
from liveroom.core.draws import Draws, pick_winners
from liveroom.core.session import Session
from liveroom.errors import ReplyError
from liveroom.protocol import frames as F
from liveroom.redis_local import RedisProcess


@pytest.fixture
async def brokers(own_redis: RedisProcess) -> AsyncIterator[tuple[Config, RedisBroker, RedisBroker]]:
    cfg = replace(Config(), redis=RedisConfig(urls=(own_redis.url,)))
    out = []
    for name in ("hub-one", "hub-two"):
        b = RedisBroker(cfg.redis, name, 100)
        await b.start(BrokerEvents(lambda r, m: None, lambda rooms: None))
        out.append(b)
    yield cfg, out[0], out[1]
    for b in out:
        await b.close()


def host(room: str) -> Session:
    return Session(Identity("host", "Host", "host", (room,)), room, "host")


def viewer(room: str, user: str) -> Session:
    return Session(Identity(user, user.title(), "viewer", None), room, "viewer")


def results_in_history(url: str, room: str) -> list[dict[str, object]]:
    rc = redis.Redis.from_url(url)
    try:
        bodies = [msgpack.unpackb(e[b"e"]) for _, e in rc.xrange(f"lr:{{{room}}}:hist")]
    finally:
        rc.close()
    return [b for b in bodies if b["type"] == "draw_result"]


async def test_a_lapsed_claim_is_taken_over_and_one_result_is_stored(
    brokers: tuple[Config, RedisBroker, RedisBroker], own_redis: RedisProcess
) -> None:
    cfg, one, two = brokers
    room = "lease" + uuid.uuid4().hex[:8]
    draws_one, draws_two = Draws(cfg, one), Draws(cfg, two)
    draw = (await draws_one.start(host(room), F.DrawStart("Pen", 1, "online", "", 1)))["draw"]
    assert (await one.draw_claim(room, draw, 300)).status == "early"
    await asyncio.sleep(1.05)
    assert (await one.draw_claim(room, draw, 300)).status == "ok"
    assert (await two.draw_claim(room, draw, 300)).status == "busy"  # hub one holds the lease
    await asyncio.sleep(0.35)  # hub one "died" mid-close: its lease runs out
    assert (await two.draw_claim(room, draw, 300)).status == "ok"
    await one.draw_store_pool(room, draw, ["stale"])  # hub one's half-done close
    assert await draws_two.close(room, draw)
    assert await draws_one.close(room, draw)  # settled: nothing more published
    assert (await draws_two.view(room, draw))["entrants"] == []  # hub two's pool, not hub one's
    assert await one.draw_result(room, draw, b"\x80", b"\x80", 0) == -1
    assert len(results_in_history(own_redis.url, room)) == 1


async def test_big_online_draw_is_read_in_chunks(
    brokers: tuple[Config, RedisBroker, RedisBroker], own_redis: RedisProcess
) -> None:
    """25,000 users present (written straight into the presence hash): HSCAN in chunks into
    the entrants, ZRANGEBYLEX in chunks out, the winners PROTOCOL.md's over all of them."""
    cfg, one, _ = brokers
    room = "big" + uuid.uuid4().hex[:8]
    users = [f"user{i:05d}" for i in range(25_000)] + ["anon:feed"]
    rc = redis.Redis.from_url(own_redis.url)
    try:
        rc.hset(f"lr:{{{room}}}:ref", mapping={u: 1 for u in users})
    finally:
        rc.close()
    draws = Draws(cfg, one)
    draw = (await draws.start(host(room), F.DrawStart("TV", 7, "online", "", 1)))["draw"]
    await asyncio.sleep(1.05)
    assert await draws.close(room, draw)
    [result] = results_in_history(own_redis.url, room)
    assert result["entrants"] == 25_000
    view = await draws.view(room, draw, "", 10_000)
    seed = bytes.fromhex(view["draw"]["seed"])
    assert hashlib.sha256(seed).hexdigest() == view["draw"]["commit"]
    assert [w["id"] for w in result["winners"]] == pick_winners(seed, users[:-1], 7)  # type: ignore[union-attr]
    pages = view["entrants"]
    while view["cursor"]:
        view = await draws.view(room, draw, view["cursor"], 10_000)
        pages += view["entrants"]
    assert pages == users[:-1]


async def test_exclude_winners_keeps_past_winners_out(brokers: tuple[Config, RedisBroker, RedisBroker]) -> None:
    cfg, one, _ = brokers
    room = "excl" + uuid.uuid4().hex[:8]
    draws = Draws(cfg, one)
    first = (await draws.start(host(room), F.DrawStart("Hat", 1, "join", "", 1)))["draw"]
    with pytest.raises(ReplyError) as exc:
        await draws.start(host(room), F.DrawStart("Hat", 1, "join", "", 1))
    assert exc.value.code == "draw_open"
    await draws.join(viewer(room, "alice"), F.JoinDraw(first))
    await asyncio.sleep(1.05)
    assert await draws.close(room, first)
    assert (await draws.view(room, first))["draw"]["winners"] == [{"id": "alice", "name": "Alice"}]
    second = (await draws.start(host(room), F.DrawStart("Hat", 1, "join", "", 1, exclude_winners=True)))["draw"]
    with pytest.raises(ReplyError) as exc:
        await draws.join(viewer(room, "alice"), F.JoinDraw(second))
    assert exc.value.code == "forbidden"
    await draws.join(viewer(room, "bob"), F.JoinDraw(second))
    await asyncio.sleep(1.05)
    assert await draws.close(room, second)
    view = await draws.view(room, second)
    assert view["entrants"] == ["bob"] and view["draw"]["winners"][0]["id"] == "bob"
