"""Milestones fire once per crossing for the whole room, whichever hubs moved the count."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Callable


from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, eventually, http, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0"}


def milestones(c: Client) -> list[tuple[str, int, Any]]:
    return [(e["kind"], e["value"], e["reward"]) for e in c.of_type("milestone")]



async def test_likes_milestones_fire_once_with_likes_on_two_hubs(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    room = "ms" + uuid.uuid4().hex[:8]
    host = await Client.connect(hubs[0].base, room, token("host", role="host", rooms=[room]))
    tappers = [await Client.connect(hubs[i % 2].base, room, token(f"t{i}")) for i in range(20)]
    try:
        r = await host.call("milestone_set", kind="likes", value=1000, reward="a coupon for everyone")
        assert r["ok"], r
        r = await host.call("milestone_set", kind="likes", every=500)
        assert r["ok"], r
        # 20 viewers on two hubs tap 50 at a time: 2,000 likes, the hubs' flushes interleaved
        await asyncio.gather(*(c.send({"t": "like", "n": 50}) for c in tappers for _ in range(2)))
        want = sorted([("likes", 1000, "a coupon for everyone"), ("likes", 500, None), ("likes", 1000, None),
                       ("likes", 1500, None), ("likes", 2000, None)], key=repr)  # fmt: skip
        for c in [host, *tappers]:
            await c.wait_for(lambda c=c: len(milestones(c)) >= 5 and c.of_type("likes")[-1]["total"] == 2000, what="milestones")
        await asyncio.sleep(0.3)  # nothing more comes: each crossing fired once for the room
        for c in [host, *tappers]:
            assert sorted(milestones(c), key=repr) == want
        # a late joiner resuming from seq 0 finds them in history, once each
        late = await Client.connect(hubs[1].base, room, token("late"), since=0, epoch=host.welcome["epoch"])
        await late.wait_for(lambda: len(milestones(late)) == 5, what="milestones in history")
        await late.close()
    finally:
        for c in [host, *tappers]:
            await c.close()


async def test_online_milestone_and_the_http_api(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    room = "ms" + uuid.uuid4().hex[:8]
    tok = token("host", role="host", rooms=[room])
    base = hubs[0].base + f"/api/rooms/{room}/milestones"
    status, body = await http("POST", base, tok, {"kind": "online", "value": 4, "reward": "live now: 4 of us"})
    assert status == 200 and body["milestone"]
    status, gone = await http("POST", base, tok, {"kind": "online", "value": 3})
    assert status == 200
    status, bad = await http("POST", base, tok, {"kind": "online", "value": 3, "every": 5})
    assert status == 400 and bad["error"]["code"] == "bad_field"
    status, listed = await http("GET", base, tok)
    assert status == 200 and {m["id"] for m in listed["milestones"]} == {body["milestone"], gone["milestone"]}
    status, _ = await http("DELETE", f"{base}/{gone['milestone']}", tok)
    assert status == 200
    status, again = await http("DELETE", f"{base}/{gone['milestone']}", tok)
    assert status == 404 and again["error"]["code"] == "no_such_milestone"

    viewers = [await Client.connect(hubs[i % 2].base, room, token(f"v{i}")) for i in range(4)]
    try:
        for c in viewers:
            await c.wait_for(lambda c=c: milestones(c) == [("online", 4, "live now: 4 of us")], timeout=8, what="online 4")
        r = await viewers[0].call("milestone_set", kind="likes", value=10)
        assert not r["ok"] and r["error"]["code"] == "forbidden"
        status, listed = await http("GET", base, tok)
        assert [m["fired"] for m in listed["milestones"]] == [True]

        async def still_one() -> bool:
            return all(len(milestones(c)) == 1 for c in viewers)

        await eventually(still_one)  # the removed one (value 3) never fired
    finally:
        for c in viewers:
            await c.close()


async def test_a_milestone_with_a_draw_starts_it(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """'At 100 likes, a draw': the crossing fires the milestone, then the draw starts by itself
    (once, from the hub whose flush crossed it) and closes with a result for everyone."""
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    room = "ms" + uuid.uuid4().hex[:8]
    host = await Client.connect(hubs[0].base, room, token("host", role="host", rooms=[room]))
    fans = [await Client.connect(hubs[i % 2].base, room, token(f"f{i}")) for i in range(6)]
    try:
        draw = {"prize": "a scarf", "winners": 1, "mode": "online", "duration_s": 2}
        r = await host.call("milestone_set", kind="likes", value=100, reward="a draw!", draw=draw)
        assert r["ok"], r
        bad = await host.call("milestone_set", kind="likes", value=200, draw={"prize": "x", "winners": 0})
        assert not bad["ok"] and bad["error"]["code"] == "bad_field"  # the draw is checked when set
        await asyncio.gather(*(c.send({"t": "like", "n": 20}) for c in fans))  # 120 likes, two hubs
        for c in [host, *fans]:
            await c.wait_for(lambda c=c: bool(c.of_type("draw_result")), timeout=10, what="the milestone's draw result")
        for c in [host, *fans]:
            assert milestones(c) == [("likes", 100, "a draw!")]
            assert len(c.of_type("draw_started")) == 1 and c.of_type("draw_started")[0]["draw"]["prize"] == "a scarf"
        results = {repr(c.of_type("draw_result")[0]) for c in [host, *fans]}
        assert len(results) == 1  # everyone saw the same winner
    finally:
        for c in [host, *fans]:
            await c.close()
