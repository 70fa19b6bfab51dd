"""Reconnecting viewers pick up where they left off; flooded viewers get a capped sample."""

from __future__ import annotations

import asyncio
import uuid
from typing import Awaitable, Callable

import aiohttp

from liveroom.redis_local import RedisProcess
from tests.support import AppHub, Client, HubProcess, t, token
from tests.support import stalled_viewer


def room() -> str:
    return "rs" + uuid.uuid4().hex[:8]


async def test_resume_after_reconnect(shared_hub: HubProcess) -> None:
    """A viewer who drops and comes back with since/epoch gets exactly the missed events."""
    r_ = room()
    talker = await Client.connect(shared_hub.base, r_, token("talker"))
    v = await Client.connect(shared_hub.base, r_, token("v"))
    try:
        for i in range(3):
            assert (await talker.call("comment", text=f"before {i}"))["ok"]
        await v.wait_for(lambda: len(v.of_type("comment")) == 3, what="3 comments")
        last = v.of_type("comment")[-1]["seq"]
        epoch = v.welcome["epoch"]
        await v.close()
        for i in range(4):
            assert (await talker.call("comment", text=f"missed {i}"))["ok"]
        back = await Client.connect(shared_hub.base, r_, token("v"), since=last, epoch=epoch)
        assert back.welcome["recovered"] is True
        await back.wait_for(lambda: len(back.of_type("comment")) == 4, what="4 missed comments")
        assert [e["text"] for e in back.of_type("comment")] == [f"missed {i}" for i in range(4)]
        assert (await talker.call("comment", text="after"))["ok"]
        await back.wait_for(lambda: len(back.of_type("comment")) == 5, what="live comment")
        seqs = [e["seq"] for e in back.of_type("comment")]
        assert seqs == list(range(last + 1, last + 6))
        await back.close()

        stale = await Client.connect(shared_hub.base, r_, token("v"), since=last, epoch="not-the-epoch")
        assert stale.welcome["recovered"] is False
        # a replay of the old epoch's events would come before anything live: after a live
        # comment arrives, it is the only one there
        assert (await talker.call("comment", text="live"))["ok"]
        await stale.wait_for(lambda: len(stale.of_type("comment")) >= 1, what="the live comment")
        assert [e["text"] for e in stale.of_type("comment")] == ["live"]
        await stale.close()
    finally:
        await talker.close()


async def test_viewer_cap_samples_comments(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    """Over the per-viewer cap a viewer gets a sample and a `dropped` count; a commenter
    always sees their own comments; notices are never sampled."""
    h = await app_hub(LIVEROOM_VIEWER_COMMENT_CAP="5", LIVEROOM_COMMENT_RATE="0", LIVEROOM_FRAME_RATE="0")
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
                await asyncio.sleep(0.05)  # spread over the comments, not a wait

        await asyncio.gather(announce(), *(talk(i, c) for i, c in enumerate(talkers)))
        total = per * len(talkers)
        await watcher.wait_for(
            lambda: len(watcher.of_type("comment")) + watcher.dropped >= total, what="every comment sent or counted"
        )
        await watcher.wait_for(lambda: len(watcher.of_type("notice")) >= len(notices), what="every notice")
        for i, c in enumerate(talkers):
            await c.wait_for(
                lambda c=c, i=i: {e["seq"] for e in c.of_type("comment")} >= own_seqs[i], what=f"talker {i}'s own comments"
            )
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
    """On SIGTERM viewers get `bye draining` with reconnect, and new sockets are refused
    while the hub drains (it waits up to drain_timeout_s, 5 s, for a viewer that does not
    answer the close handshake: the stalled one keeps it draining)."""
    h = start_hub(LIVEROOM_REDIS=redis1.url)
    r_ = room()
    c = await Client.connect(h.base, r_, token("u"))
    stalled = stalled_viewer(h.port, r_, token("stalled"))
    try:
        h.proc.terminate()  # type: ignore[union-attr]
        await asyncio.wait_for(c.closed.wait(), t(10))
        assert c.last_frame("bye") == {"t": "bye", "reason": "draining", "reconnect": True}
        assert h.proc.poll() is None, "the hub exited before the stalled viewer's timeout"  # type: ignore[union-attr]
        try:
            late = await Client.connect(h.base, r_, token("late"))
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 503, exc  # `draining`
        except aiohttp.ClientConnectionError:
            pass  # the listening socket is already closed
        else:
            await late.close()
            raise AssertionError(f"a new socket was welcomed while the hub drained: {late.welcome}")
        assert h.proc.poll() is None, "the refusal was not made while draining"  # type: ignore[union-attr]
    finally:
        stalled.close()
        await c.close()
