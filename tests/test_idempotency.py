"""`unavailable` means "unknown, retry with the same key": ops that publish take an optional
idempotency `key` (HTTP: an `Idempotency-Key` header); a retry answers as the first call did
and nothing is published twice."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Callable

import aiohttp

from liveroom.redis_local import RedisProcess, find_server
from tests.support import Client, HubProcess, eventually, http, t, token


def room() -> str:
    return "idem" + uuid.uuid4().hex[:8]


async def test_a_repeated_key_is_answered_as_the_first_call_and_published_once(shared_hub: HubProcess) -> None:
    r = room()
    host = await Client.connect(shared_hub.base, r, token("h", role="host", rooms=[r]))
    viewer = await Client.connect(shared_hub.base, r, token("v"))
    try:
        ops = [
            ("comment", {"text": "hello"}, "seq"),
            ("notice", {"text": "doors open"}, "seq"),
            ("pin", {"product": {"sku": "A1"}}, "seq"),
            ("sale_create", {"sku": "S", "title": "Jacket", "price": 100, "stock": 5, "limit": 1}, "sale"),
            ("draw_start", {"prize": "mug", "winners": 1, "duration_s": 60}, "draw"),
        ]
        for op, fields, field in ops:
            first = await host.call(op, key=f"k-{op}", **fields)
            again = await host.call(op, key=f"k-{op}", **fields)
            assert first["ok"] and again["ok"], (first, again)
            assert again[field] == first[field] and again["seq"] == first["seq"], (op, first, again)
        # another key is another op: a second notice; a second draw is refused while one is open
        other = await host.call("notice", key="k-other", text="doors open")
        assert other["ok"] and other["seq"] != host.replies[3]["seq"]
        refused = await host.call("draw_start", key="k-draw-2", prize="mug", winners=1)
        assert refused["error"]["code"] == "draw_open"
        # the same key from another user is that user's own
        bob = await Client.connect(shared_hub.base, r, token("bob"))
        mine = await bob.call("comment", key="k-comment", text="hello")
        assert mine["ok"] and mine["seq"] != host.replies[1]["seq"]
        await bob.close()

        await viewer.wait_for(lambda: len(viewer.of_type("notice")) == 2, what="the notices")
        await viewer.wait_for(lambda: len(viewer.of_type("comment")) == 2, what="the comments")
        await host.call("notice", text="marker")  # everything before it has been delivered
        await viewer.wait_for(lambda: any(e.get("text") == "marker" for e in viewer.of_type("notice")), what="marker")
        counts = {kind: len(viewer.of_type(kind)) for kind in ("comment", "pin", "sale", "draw_started")}
        assert counts == {"comment": 2, "pin": 1, "sale": 1, "draw_started": 1}, counts
        assert len(viewer.of_type("notice")) == 3  # two keys, and the marker
    finally:
        await host.close()
        await viewer.close()


async def test_http_idempotency_key_header(shared_hub: HubProcess) -> None:
    r = room()
    tok = token("h", role="host", rooms=[r])
    viewer = await Client.connect(shared_hub.base, r, token("v"))
    try:
        async def post(path: str, body: dict[str, object], key: str) -> dict[str, object]:
            async with aiohttp.ClientSession() as s:
                headers = {"Authorization": f"Bearer {tok}", "Idempotency-Key": key}
                async with s.post(f"{shared_hub.base}/api/rooms/{r}/{path}", json=body, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    out: dict[str, object] = await resp.json()
                    return out

        a = await post("notices", {"text": "hi"}, "n1")
        b = await post("notices", {"text": "hi"}, "n1")
        assert a["seq"] == b["seq"]
        s1 = await post("sales", {"sku": "S", "title": "T", "price": 1, "stock": 3, "limit": 1}, "s1")
        s2 = await post("sales", {"sku": "S", "title": "T", "price": 1, "stock": 3, "limit": 1}, "s1")
        assert s1["sale"] == s2["sale"]
        d1 = await post("draws", {"prize": "p", "winners": 1}, "d1")
        d2 = await post("draws", {"prize": "p", "winners": 1}, "d1")
        assert d1["draw"] == d2["draw"]
        status, _ = await http("POST", f"{shared_hub.base}/api/rooms/{r}/notices", tok, {"text": "marker"})
        assert status == 200
        await viewer.wait_for(lambda: len(viewer.of_type("notice")) == 2, what="two notices")
        assert [e["text"] for e in viewer.of_type("notice")] == ["hi", "marker"]
        assert len(viewer.of_type("sale")) == 1 and len(viewer.of_type("draw_started")) == 1
    finally:
        await viewer.close()


async def test_retry_after_unavailable_publishes_once(start_hub: Callable[..., HubProcess]) -> None:
    """The shard stops answering (SIGSTOP) while a host's notice and comment are on their way:
    the hub answers `unavailable`, and Redis runs the buffered commands once it resumes. The
    client retries with the same keys: each is published exactly once, the retry answering
    the first call's seq."""
    shard = RedisProcess(find_server()).start()  # our own: this test pauses it
    try:
        h = start_hub(LIVEROOM_REDIS=shard.url, LIVEROOM_FRAME_RATE="0", LIVEROOM_COMMENT_RATE="0")
        r = room()
        host = await Client.connect(h.base, r, token("h", role="host", rooms=[r]))
        viewer = await Client.connect(h.base, r, token("v"))
        assert shard.proc is not None
        os.kill(shard.proc.pid, signal.SIGSTOP)
        try:
            first = await asyncio.gather(
                host.call("notice", key="n-1", text="the notice"), host.call("comment", key="c-1", text="the comment")
            )
            assert [x["error"]["code"] for x in first] == ["unavailable", "unavailable"], first
        finally:
            os.kill(shard.proc.pid, signal.SIGCONT)

        async def retried() -> bool:
            again = await host.call("notice", key="n-1", text="the notice")
            return bool(again["ok"])

        await eventually(retried, timeout=10, every=0.3, what="the shard answering again")
        comment = await host.call("comment", key="c-1", text="the comment")
        notice = await host.call("notice", key="n-1", text="the notice")
        assert comment["ok"] and notice["ok"]
        await host.call("notice", text="marker")
        await viewer.wait_for(
            lambda: any(e["text"] == "marker" for e in viewer.of_type("notice")), timeout=10, what="the marker"
        )
        notices = [e for e in viewer.of_type("notice") if e["text"] == "the notice"]
        comments = viewer.of_type("comment")
        assert len(notices) == 1 and notices[0]["seq"] == notice["seq"], viewer.events
        assert len(comments) == 1 and comments[0]["seq"] == comment["seq"], viewer.events
        await asyncio.wait_for(host.close(), t(5))
        await viewer.close()
    finally:
        shard.stop()
