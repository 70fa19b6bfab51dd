"""Live sessions on two real hubs over one real Redis: start and end (op and HTTP), the
`live` event everywhere, welcome.state.live, the figures counted by the same scripts as the
room's totals (exact), the timeline and its CSV, retention, and the idle close."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from typing import Any, Callable

import redis.asyncio as aioredis

from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, eventually, http, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0", "LIVEROOM_LIKE_RATE": "0"}



def lives(c: Client) -> list[dict[str, Any]]:
    return c.of_type("live")


async def test_a_session_on_two_hubs_counts_exactly_what_happened(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    room = "ls" + uuid.uuid4().hex[:8]
    host_tok = token("host", role="host", rooms=[room])
    shop_tok = token("shop-backend", role="shop", rooms=[room])
    api = f"{hubs[1].base}/api/rooms/{room}"
    host = await Client.connect(hubs[0].base, room, host_tok)
    v0 = await Client.connect(hubs[0].base, room, token("v0"))
    v1 = await Client.connect(hubs[1].base, room, token("v1"))
    late: Client | None = None
    try:
        assert host.welcome["state"]["live"] is None
        assert (await v0.call("comment", text="before the stream"))["ok"]  # the room's, not the session's
        sale = (await host.call("sale_create", sku="A", title="Hat", price=250, stock=10, limit=3,
                                starts_at=0, ends_at=0))["sale"]  # fmt: skip

        r = await v0.call("live_start")  # a host op
        assert not r["ok"] and r["error"]["code"] == "forbidden"
        started = await host.call("live_start")
        assert started["ok"] and started["started"], started
        sid, at = started["session"], started["started_at"]
        again = await host.call("live_start")  # starting while live answers the running session
        assert again["ok"] and again["session"] == sid and again["started_at"] == at and not again["started"]
        status, body = await http("POST", f"{api}/sessions", host_tok)
        assert status == 200 and body["session"] == sid and not body["started"]
        for c in (host, v0, v1):
            await c.wait_for(lambda c=c: len(lives(c)) == 1, what="the live event on both hubs")
            assert lives(c)[0] == {"type": "live", "seq": lives(c)[0]["seq"], "status": "live", "session": sid,
                                   "started_at": at, "ended_at": None}  # fmt: skip

        for i in range(3):
            assert (await v0.call("comment", text=f"hello {i}"))["ok"]
        for i in range(2):
            assert (await v1.call("comment", text=f"hi {i}"))["ok"]
        await v0.send({"t": "like", "n": 7})
        await v1.send({"t": "like", "n": 4})
        await v1.wait_for(lambda: any(e["total"] == 11 for e in v1.of_type("likes")), what="11 likes")
        o0 = (await v0.call("buy", sale=sale, qty=2, key="k0"))["order"]
        o1 = (await v1.call("buy", sale=sale, qty=1, key="k1"))["order"]
        o2 = (await v0.call("buy", sale=sale, qty=1, key="k2"))["order"]
        status, _ = await http("POST", f"{hubs[1].base}/api/orders/{o0}/confirm", shop_tok)
        assert status == 200
        assert (await host.call("draw_start", prize="Mug", winners=1, mode="join", duration_s=1))["ok"]

        late = await Client.connect(hubs[1].base, room, token("late"))
        assert late.welcome["state"]["live"] == {"session": sid, "started_at": at}

        async def four_viewers() -> bool:
            _, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
            return bool(b["session"]["peak_online"] == 4)

        await eventually(four_viewers, what="the late joiner in the session's peak")
        _, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
        live_view = b["session"]
        assert live_view["status"] == "live" and live_view["ended_at"] is None

        ended = await host.call("live_end")
        assert ended["ok"] and ended["session"] == sid and ended["ended"], ended
        for c in (host, v0, v1, late):
            await c.wait_for(lambda c=c: any(e["status"] == "ended" for e in lives(c)), what="live ended everywhere")
            e = lives(c)[-1]
            assert e["session"] == sid and e["started_at"] == at and e["ended_at"] == ended["ended_at"]
        assert (await v0.call("comment", text="after the stream"))["ok"]  # the room's only

        status, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
        assert status == 200
        s = b["session"]
        assert s["status"] == "ended" and s["started_at"] == at and s["ended_at"] == ended["ended_at"]
        assert s["comments"] == 5 and s["likes"] == 11 and s["draws"] == 1
        assert s["orders"] == {"confirmed": 1, "pending": 2}
        assert s["gmv"] == {"confirmed": 500, "pending": 500}
        assert s["viewers"] == 4 and s["peak_online"] == 4  # host, v0, v1, late (HLL: exact this small)
        tl = s["timeline"]
        assert tl and all(e["t"] % 60_000 == 0 for e in tl)
        assert tl[0]["t"] == at // 60_000 * 60_000 and tl[-1]["t"] == ended["ended_at"] // 60_000 * 60_000
        assert [e["t"] for e in tl] == list(range(tl[0]["t"], tl[-1]["t"] + 1, 60_000))
        assert sum(e["comments"] for e in tl) == 5 and sum(e["likes"] for e in tl) == 11
        assert sum(e["orders"] for e in tl) == 3 and sum(e["gmv"] for e in tl) == 1000
        assert max(e["online"] for e in tl) == 4
        _, room_stats = await http("GET", api, host_tok)
        assert room_stats["comments"] == 7  # the room counts what the session does not

        status, text = await http("GET", f"{api}/sessions/{sid}?format=csv", host_tok)
        assert status == 200
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [{k: int(v) for k, v in r.items()} for r in rows] == tl

        # paid and cancelled after the stream: the session's figures follow its orders
        status, _ = await http("POST", f"{hubs[0].base}/api/orders/{o1}/confirm", shop_tok)
        assert status == 200
        status, _ = await http("POST", f"{hubs[0].base}/api/orders/{o2}/cancel", shop_tok)
        assert status == 200
        _, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
        assert b["session"]["orders"] == {"confirmed": 2, "pending": 0}
        assert b["session"]["gmv"] == {"confirmed": 750, "pending": 0}
        assert b["session"]["timeline"] == tl  # orders and gmv as placed, minute by minute

        # ended twice: the same answer (retention refreshed); over the WebSocket nothing is live
        status, b = await http("POST", f"{api}/sessions/{sid}/end", host_tok)
        assert status == 200 and b["ended_at"] == ended["ended_at"] and not b["ended"]
        r = await host.call("live_end")
        assert not r["ok"] and r["error"]["code"] == "closed"
        status, b = await http("GET", f"{api}/sessions/nope", host_tok)
        assert status == 404 and b["error"]["code"] == "no_such_session"
        status, b = await http("GET", f"{api}/sessions/{sid}", token("v0"))
        assert status == 403

        client = aioredis.from_url(redis1.url)
        try:
            ttl = await client.pttl(f"lr:{{{room}}}:session:{sid}")
            assert 89 * 86_400_000 < ttl <= 90 * 86_400_000
            assert await client.pttl(f"lr:{{{room}}}:session:{sid}:hll") > 89 * 86_400_000
            assert not await client.exists(f"lr:{{{room}}}:live")
        finally:
            await client.aclose()

        # the next stream is judged on its own
        status, b = await http("POST", f"{api}/sessions", host_tok)
        assert status == 200 and b["started"] and b["session"] != sid
        second = b["session"]
        assert (await v1.call("comment", text="second stream"))["ok"]
        status, b = await http("GET", f"{api}/sessions", host_tok)
        assert [x["session"] for x in b["sessions"]] == [second, sid]
        assert [x["status"] for x in b["sessions"]] == ["live", "ended"]
        _, b = await http("GET", f"{api}/sessions/{second}", host_tok)
        assert b["session"]["comments"] == 1 and b["session"]["likes"] == 0
        status, b = await http("POST", f"{api}/sessions/{second}/end", host_tok)
        assert status == 200 and b["ended"]
    finally:
        for c in (host, v0, v1, late):
            if c is not None:
                await c.close()


async def test_a_session_without_viewers_closes_itself_once(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    env = {"LIVEROOM_SESSION_IDLE_CLOSE_S": "1", "LIVEROOM_IMPLICIT_ROOMS": "0", **FAST}
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **env) for _ in range(2)]
    room = "li" + uuid.uuid4().hex[:8]
    host_tok = token("host", role="host", rooms=[room])
    api = f"{hubs[0].base}/api/rooms/{room}"
    status, b = await http("GET", api, host_tok)
    assert status == 404 and b["error"]["code"] == "no_such_room"
    status, b = await http("POST", f"{api}/sessions", host_tok)  # live_start creates the room
    assert status == 200 and b["started"]
    sid = b["session"]
    viewer = await Client.connect(hubs[1].base, room, token("v"))
    try:
        await asyncio.sleep(2.5)  # a viewer is there: the session stays live
        _, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
        assert b["session"]["status"] == "live"
    finally:
        await viewer.close()

    async def ended() -> bool:
        _, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
        return bool(b["session"]["status"] == "ended")

    await eventually(ended, timeout=8, what="the idle close")
    _, b = await http("GET", f"{api}/sessions/{sid}", host_tok)
    assert b["session"]["viewers"] == 1 and b["session"]["ended_at"] is not None
    # one close however many hubs polled: one `live` ended event in the room's history
    client = aioredis.from_url(redis1.url)
    try:
        entries = await client.xrange(f"lr:{{{room}}}:hist")
    finally:
        await client.aclose()
    import msgpack

    kinds = [msgpack.unpackb(f[b"e"]) for _, f in entries]
    assert [(e["type"], e["status"]) for e in kinds if e["type"] == "live"] == [("live", "live"), ("live", "ended")]


def test_won_members_are_scoped_by_session() -> None:
    from liveroom.core.draws import won_in, won_members

    members = {*won_members("s1", ["a", "b"]), *won_members("", ["c"]), *won_members("s2", ["d"])}
    assert won_in("s1", members) == {"a", "b"} and won_in("s2", members) == {"d"} and won_in("", members) == {"c"}


async def test_exclude_winners_means_won_in_this_live_session(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    h = start_hub(LIVEROOM_REDIS=redis1.url, **FAST)
    room = "lx" + uuid.uuid4().hex[:8]
    host = await Client.connect(h.base, room, token("host", role="host", rooms=[room]))
    a = await Client.connect(h.base, room, token("a"))

    async def draw(expect_join: str | None) -> dict[str, Any]:
        d = (await host.call("draw_start", prize="Mug", winners=1, mode="join", duration_s=1, exclude_winners=True))["draw"]
        r = await a.call("join_draw", draw=d)
        assert (r["ok"] if expect_join is None else r["error"]["code"] == expect_join), r
        await a.wait_for(lambda: any(e["draw"] == d for e in a.of_type("draw_result")), timeout=6, what="the result")
        return next(e for e in a.of_type("draw_result") if e["draw"] == d)

    try:
        assert (await host.call("live_start"))["started"]
        assert [w["id"] for w in (await draw(None))["winners"]] == ["a"]
        assert (await draw("forbidden"))["entrants"] == 0  # a won in this session
        assert (await host.call("live_end"))["ended"]
        assert (await host.call("live_start"))["started"]
        assert [w["id"] for w in (await draw(None))["winners"]] == ["a"]  # a new session: a may win again
    finally:
        await host.close()
        await a.close()


async def test_a_session_on_a_redis_cluster(start_hub: Callable[..., HubProcess], cluster3: Any) -> None:
    """Every session key shares the room's slot (the scripts run); the idle index lives in its
    own slot, written outside the scripts."""
    h = start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url, LIVEROOM_SESSION_IDLE_CLOSE_S="1", **FAST)
    room = "lc" + uuid.uuid4().hex[:8]
    host_tok = token("host", role="host", rooms=[room])
    viewer = await Client.connect(h.base, room, token("v"))
    try:
        status, b = await http("POST", f"{h.base}/api/rooms/{room}/sessions", host_tok)
        assert status == 200 and b["started"], b
        sid = b["session"]
        assert (await viewer.call("comment", text="hi"))["ok"]
        await viewer.send({"t": "like", "n": 3})
        await viewer.wait_for(lambda: any(e["status"] == "live" for e in lives(viewer)), what="live on a cluster")
        await viewer.wait_for(lambda: any(e["total"] == 3 for e in viewer.of_type("likes")), what="3 likes")
    finally:
        await viewer.close()

    async def ended() -> bool:  # the idle close, from the cluster's index
        _, b = await http("GET", f"{h.base}/api/rooms/{room}/sessions/{sid}", host_tok)
        return bool(b["session"]["status"] == "ended")

    await eventually(ended, timeout=8, what="the idle close on a cluster")
    _, b = await http("GET", f"{h.base}/api/rooms/{room}/sessions/{sid}", host_tok)
    s = b["session"]
    assert (s["comments"], s["likes"], s["viewers"], s["peak_online"]) == (1, 3, 1, 1)
