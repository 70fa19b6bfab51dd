"""Reconnecting viewers pick up where they left off; flooded viewers get a capped sample."""

from __future__ import annotations

import asyncio
import uuid
from typing import Callable

from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, t, token


def room() -> str:
    return "rs" + uuid.uuid4().hex[:8]


async def test_resume_after_reconnect(hub: HubProcess) -> None:
    """A viewer who drops and comes back with since/epoch gets exactly the missed events."""
    r_ = room()
    talker = await Client.connect(hub.base, r_, token("talker"))
    v = await Client.connect(hub.base, r_, token("v"))
    try:
        for i in range(3):
            assert (await talker.call("comment", text=f"before {i}"))["ok"]
        await v.wait_for(lambda: len(v.of_type("comment")) == 3, what="3 comments")
        last = v.of_type("comment")[-1]["seq"]
        epoch = v.welcome["epoch"]
        await v.close()
        for i in range(4):
            assert (await talker.call("comment", text=f"missed {i}"))["ok"]
        back = await Client.connect(hub.base, r_, token("v"), since=last, epoch=epoch)
        assert back.welcome["recovered"] is True
        await back.wait_for(lambda: len(back.of_type("comment")) == 4, what="4 missed comments")
        assert [e["text"] for e in back.of_type("comment")] == [f"missed {i}" for i in range(4)]
        assert (await talker.call("comment", text="after"))["ok"]
        await back.wait_for(lambda: len(back.of_type("comment")) == 5, what="live comment")
        seqs = [e["seq"] for e in back.of_type("comment")]
        assert seqs == list(range(last + 1, last + 6))
        await back.close()

        stale = await Client.connect(hub.base, r_, token("v"), since=last, epoch="not-the-epoch")
        assert stale.welcome["recovered"] is False
        await asyncio.sleep(0.3)
        assert stale.of_type("comment") == []
        await stale.close()
    finally:
        await talker.close()


async def test_viewer_cap_samples_comments(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """Over the per-viewer cap a viewer gets a sample and a `dropped` count; a commenter
    always sees their own comments; notices are never sampled."""
    h = start_hub(
        LIVEROOM_REDIS=redis1.url,
        LIVEROOM_VIEWER_COMMENT_CAP="5",
        LIVEROOM_COMMENT_RATE="0",
        LIVEROOM_FRAME_RATE="0",
    )
    r_ = room()
    watcher = await Client.connect(h.base, r_, token("watcher"))
    host = await Client.connect(h.base, r_, token("host", role="host", rooms=[r_]))
    talkers = [await Client.connect(h.base, r_, token(f"t{i}")) for i in range(4)]
    try:
        per = 25
        own_seqs: dict[int, set[int]] = {}

        async def talk(i: int, c: Client) -> None:
            own_seqs[i] = set()
            for n in range(per):
                r = await c.call("comment", text=f"t{i} {n}")
                own_seqs[i].add(r["seq"])

        notices = []

        async def announce() -> None:
            for n in range(5):
                notices.append((await host.call("notice", text=f"notice {n}"))["seq"])
                await asyncio.sleep(0.05)

        await asyncio.gather(announce(), *(talk(i, c) for i, c in enumerate(talkers)))
        total = per * len(talkers)
        await asyncio.sleep(t(1.0))
        got = len(watcher.of_type("comment"))
        assert got + watcher.dropped == total, (got, watcher.dropped)
        assert watcher.dropped > 0 and got < total
        assert [e["seq"] for e in watcher.of_type("notice")] == notices
        seqs = [e["seq"] for e in watcher.events if "seq" in e]
        assert seqs == sorted(seqs)
        for i, c in enumerate(talkers):
            mine = {e["seq"] for e in c.of_type("comment") if e["user"]["id"] == f"t{i}"}
            assert mine == own_seqs[i], f"talker {i} missed their own comments"
    finally:
        for c in [watcher, host, *talkers]:
            await c.close()


async def test_drain_sends_bye(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """On SIGTERM viewers get `bye draining` with reconnect, and new sockets are refused."""
    h = start_hub(LIVEROOM_REDIS=redis1.url)
    c = await Client.connect(h.base, room(), token("u"))
    try:
        h.proc.terminate()  # type: ignore[union-attr]
        await asyncio.wait_for(c.closed.wait(), t(10))
        assert c.last_frame("bye") == {"t": "bye", "reason": "draining", "reconnect": True}
    finally:
        await c.close()
