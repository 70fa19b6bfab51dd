"""Lucky draws end to end: real Redis, real hub processes, viewers on two hubs. The checks
use only what a viewer and the HTTP API expose (the commit, the seed, the entrant pages)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any, Callable

import redis

from liveroom.redis_local import RedisClusterProcesses, RedisProcess
from tests.conftest import HUB_ENV
from tests.test_draws_unit import reference
from tests.support import Client, HubProcess, http, t, token


def room() -> str:
    return "draw" + uuid.uuid4().hex[:8]



def host_token(r: str) -> str:
    return token("host", role="host", rooms=[r])



async def verify(base: str, r: str, started: dict[str, Any], result: dict[str, Any], page: int = 2) -> list[str]:
    """From outside: the seed matches the commit, the entrant pages add up, and the winners
    are the algorithm's over them. Returns the entrants."""
    seed = bytes.fromhex(result["seed"])
    assert hashlib.sha256(seed).hexdigest() == started["commit"]
    entrants: list[str] = []
    cursor = ""
    while True:
        status, body = await http("GET", f"{base}/api/rooms/{r}/draws/{started['id']}?count={page}&cursor={cursor}", host_token(r))
        assert status == 200, body
        assert body["draw"]["seed"] == result["seed"] and body["draw"]["status"] == "closed"
        assert body["draw"]["winners"] == result["winners"]
        entrants += body["entrants"]
        if body["cursor"] is None:
            break
        cursor = body["cursor"]
    assert len(entrants) == result["entrants"] == len(set(entrants))
    assert [w["id"] for w in result["winners"]] == reference(seed, entrants, started["winners"])
    return entrants


def results(c: Client) -> list[dict[str, Any]]:
    return c.of_type("draw_result")


async def test_join_draw_on_two_hubs_verifiable(hubs2: list[HubProcess]) -> None:
    r = room()
    a, b = hubs2
    host = await Client.connect(a.base, r, host_token(r))
    alice = await Client.connect(a.base, r, token("alice", name="Alice"))
    bob = await Client.connect(b.base, r, token("bob", name="Bob"))
    carol = await Client.connect(b.base, r, token("carol", name="Carol"))
    anon = await Client.connect(b.base, r, None)
    late = None
    try:
        reply = await host.call("draw_start", prize="Phone", winners=2, mode="join", duration_s=2)
        assert reply["ok"], reply
        draw = reply["draw"]
        again = await host.call("draw_start", prize="Mug", winners=1, mode="join", duration_s=2)
        assert not again["ok"] and again["error"]["code"] == "draw_open"
        assert not (await alice.call("draw_start", prize="x", winners=1, duration_s=2))["ok"]  # host only
        for _ in range(3):
            assert (await alice.call("join_draw", draw=draw))["ok"]
        assert (await bob.call("join_draw", draw=draw))["ok"]
        assert (await carol.call("join_draw", draw=draw))["ok"]
        assert (await anon.call("join_draw", draw=draw))["error"]["code"] == "forbidden"
        assert (await bob.call("join_draw", draw="nope"))["error"]["code"] == "no_such_draw"
        await bob.wait_for(lambda: bob.of_type("draw_started"), what="draw_started on hub b")
        started = bob.of_type("draw_started")[0]["draw"]
        assert started["id"] == draw and "seed" not in started
        late = await Client.connect(b.base, r, token("dave"))
        assert late.welcome["state"]["draw"] == started  # the open draw, without its seed
        status, body = await http("GET", f"{a.base}/api/rooms/{r}/draws/{draw}", host_token(r))
        assert status == 200 and body["draw"]["status"] == "open" and "seed" not in body["draw"]
        assert body["draw"]["entrants"] == 3

        everyone = [host, alice, bob, carol, anon, late]
        for c in everyone:
            await c.wait_for(lambda c=c: results(c), timeout=5, what="draw_result")
        got = time.time() * 1000
        assert started["ends_at"] <= got <= started["ends_at"] + t(2500)
        result = results(alice)[0]
        for c in everyone:
            assert results(c) == [result]
        assert result["draw"] == draw and result["entrants"] == 3 and len(result["winners"]) == 2
        names = {"alice": "Alice", "bob": "Bob", "carol": "Carol"}
        assert all(w["name"] == names[w["id"]] for w in result["winners"])
        entrants = await verify(a.base, r, started, result)
        assert entrants == ["alice", "bob", "carol"]
        assert (await carol.call("join_draw", draw=draw))["error"]["code"] == "closed"
        after = await Client.connect(a.base, r, token("erin"))
        assert after.welcome["state"]["draw"] is None
        await after.close()
        # the room may start its next draw now
        assert (await host.call("draw_start", prize="Mug", winners=1, mode="join", duration_s=60))["ok"]
    finally:
        for c in [host, alice, bob, carol, anon] + ([late] if late else []):
            await c.close()


async def test_keyword_draw_counts_each_author_once(hubs2: list[HubProcess]) -> None:
    r = room()
    a, b = hubs2
    host = await Client.connect(a.base, r, host_token(r))
    u1 = await Client.connect(a.base, r, token("u1"))
    u2 = await Client.connect(b.base, r, token("u2"))
    u3 = await Client.connect(b.base, r, token("u3"))
    anon = await Client.connect(a.base, r, None)
    try:
        reply = await host.call("draw_start", prize="Gift box", winners=5, mode="keyword", keyword="Gift 2", duration_s=2)
        assert reply["ok"], reply
        draw = reply["draw"]
        for _ in range(3):
            assert (await u1.call("comment", text="I want the gift 2 please"))["ok"]
        assert (await u2.call("comment", text="ＧＩＦＴ２！"))["ok"]  # full-width, upper case
        assert (await u3.call("comment", text="hello"))["ok"]
        assert (await anon.call("comment", text="gift 2"))["error"]["code"] == "forbidden"
        wrong = await u3.call("join_draw", draw=draw)
        assert wrong["error"]["code"] == "bad_field" and "keyword" in wrong["error"]["message"]
        await u3.wait_for(lambda: results(u3), timeout=6, what="draw_result")
        result = results(u3)[0]
        started = u3.of_type("draw_started")[0]["draw"]
        assert started["keyword"] == "Gift 2" and started["mode"] == "keyword"
        assert result["entrants"] == 2
        assert await verify(b.base, r, started, result, page=1) == ["u1", "u2"]
        await u1.wait_for(lambda: results(u1), what="draw_result on hub a")
        assert results(u1) == [result]
    finally:
        for c in (host, u1, u2, u3, anon):
            await c.close()


async def test_online_draw_takes_who_is_present_on_every_hub(hubs2: list[HubProcess]) -> None:
    r = room()
    a, b = hubs2
    host = await Client.connect(a.base, r, host_token(r))
    here = [
        await Client.connect(a.base, r, token("o1", name="Olga")),
        await Client.connect(b.base, r, token("o2")),
        await Client.connect(a.base, r, token("o3")),
        await Client.connect(b.base, r, token("o3")),  # one user on both hubs: one entrant
        await Client.connect(b.base, r, None),  # anonymous: never enters
    ]
    gone = await Client.connect(b.base, r, token("o4"))
    try:
        reply = await host.call("draw_start", prize="Voucher", winners=10, mode="online", duration_s=2)
        assert reply["ok"], reply
        await gone.close()  # left before the close: not an entrant
        for c in here:
            await c.wait_for(lambda c=c: results(c), timeout=6, what="draw_result")
        result = results(here[0])[0]
        assert all(results(c) == [result] for c in here)
        started = here[1].of_type("draw_started")[0]["draw"]
        entrants = await verify(a.base, r, started, result)
        assert entrants == ["host", "o1", "o2", "o3"]  # the host is in the room too
        assert sorted(w["id"] for w in result["winners"]) == entrants
        # names come from presence (the hub writes them when it registers a user)
        assert {w["id"]: w["name"] for w in result["winners"]} == {**{u: u for u in entrants}, "o1": "Olga"}
    finally:
        for c in [host, *here]:
            await c.close()


async def test_two_hubs_racing_close_each_draw_once(hubs2: list[HubProcess], redis1: RedisProcess) -> None:
    """30 rooms, a 1 s draw each (started over HTTP on alternating hubs), both hubs' closers
    polling: every viewer gets exactly one draw_result, and history holds one per draw."""
    rooms = [room() for _ in range(30)]
    viewers = [await Client.connect(hubs2[i % 2].base, r, token(f"v{i}")) for i, r in enumerate(rooms)]
    try:
        draws = []
        for i, r in enumerate(rooms):
            status, body = await http(
                "POST", f"{hubs2[(i + 1) % 2].base}/api/rooms/{r}/draws", host_token(r),
                {"prize": "Cup", "winners": 1, "mode": "join", "duration_s": 1},
            )  # fmt: skip
            assert status == 200, body
            draws.append(body["draw"])
        await asyncio.gather(*(v.call("join_draw", draw=d) for v, d in zip(viewers, draws)))
        for v in viewers:
            await v.wait_for(lambda v=v: results(v), timeout=6, what="draw_result")
        await asyncio.sleep(t(1))  # a second result would have arrived by now
        for i, v in enumerate(viewers):
            assert len(results(v)) == 1, results(v)
            assert results(v)[0]["winners"][0]["id"] == f"v{i}"
        rc = redis.Redis.from_url(redis1.url)
        try:
            for r in rooms:
                kinds = [e[b"e"] for _, e in rc.xrange(f"lr:{{{r}}}:hist")]
                assert sum(b"draw_result" in k for k in kinds) == 1
        finally:
            rc.close()
    finally:
        for v in viewers:
            await v.close()


async def test_a_killed_hub_s_draw_is_closed_on_time_by_the_other(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    a = start_hub(LIVEROOM_REDIS=redis1.url, **HUB_ENV)
    b = start_hub(LIVEROOM_REDIS=redis1.url, **HUB_ENV)
    r = room()
    host = await Client.connect(a.base, r, host_token(r))
    viewer = await Client.connect(b.base, r, token("w"))
    try:
        reply = await host.call("draw_start", prize="Bike", winners=1, mode="join", duration_s=2)
        assert (await viewer.call("join_draw", draw=reply["draw"]))["ok"]
        await viewer.wait_for(lambda: viewer.of_type("draw_started"), what="draw_started")
        a.kill()
        await viewer.wait_for(lambda: results(viewer), timeout=6, what="draw_result from hub b")
        started = viewer.of_type("draw_started")[0]["draw"]
        assert time.time() * 1000 <= started["ends_at"] + t(2000)
        assert results(viewer)[0]["winners"] == [{"id": "w", "name": "w"}]
    finally:
        await viewer.close()
        await host.close()


async def test_keyword_and_online_draws_on_a_cluster(
    start_hub: Callable[..., HubProcess], cluster3: RedisClusterProcesses
) -> None:
    """On a Redis Cluster the due index lives in its own slot (written before the start
    script) and each room's draw keys in the room's: two hubs, three rooms (random ids: usually on more than one node)."""
    hubs = [start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url, **HUB_ENV) for _ in range(2)]
    rooms = [room() for _ in range(3)]
    clients: list[Client] = []
    try:
        for i, r in enumerate(rooms):
            h = await Client.connect(hubs[i % 2].base, r, host_token(r))
            v = await Client.connect(hubs[(i + 1) % 2].base, r, token(f"k{i}", name=f"K{i}"))
            clients += [h, v]
            mode = "keyword" if i % 2 else "online"
            reply = await h.call("draw_start", prize="Cap", winners=1, mode=mode, keyword="win", duration_s=1)
            assert reply["ok"], reply
            if mode == "keyword":
                assert (await v.call("comment", text="WIN!"))["ok"]
        for i, r in enumerate(rooms):
            v = clients[2 * i + 1]
            await v.wait_for(lambda v=v: results(v), timeout=6, what="draw_result on the cluster")
            [result] = results(v)
            started = v.of_type("draw_started")[0]["draw"]
            entrants = await verify(hubs[0].base, r, started, result)
            assert entrants == ([f"k{i}"] if i % 2 else ["host", f"k{i}"])
    finally:
        for c in clients:
            await c.close()
