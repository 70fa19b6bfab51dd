"""Gap repair with real Redis and real hubs: a hub whose pub/sub connection was cut while
events went out fills the gap from history, every event once and in order; when history
no longer has the missed events, its viewers get a fresh `welcome` (recovered false)."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from typing import Callable

import redis

from liveroom.broker import keys as K
from liveroom.redis_local import RedisProcess, find_server
from tests.support import Client, HubProcess, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0", "LIVEROOM_ANONYMOUS": "1"}


def notices(c: Client) -> list[int]:
    return [e["seq"] for e in c.of_type("notice")]


async def test_missed_events_are_repaired_or_the_viewer_is_told(start_hub: Callable[..., HubProcess]) -> None:
    server = RedisProcess(find_server()).start()
    r = redis.Redis.from_url(server.url)
    clients: list[Client] = []
    try:
        victim, other = start_hub(LIVEROOM_REDIS=server.url, **FAST), start_hub(LIVEROOM_REDIS=server.url, **FAST)
        room = "gap" + uuid.uuid4().hex[:8]
        viewer = await Client.connect(victim.base, room, None)
        host = await Client.connect(other.base, room, token("host", role="host", rooms=[room]))
        clients += [viewer, host]
        assert victim.proc is not None
        pid = victim.proc.pid

        async def missed(n: int, trim: bool = False) -> list[int]:
            """`n` notices sent while the victim hub is frozen and cut off from pub/sub;
            `trim`: then history keeps only the last of them (as MAXLEN does in a busy room)."""
            os.kill(pid, signal.SIGSTOP)
            try:
                r.client_kill_filter(_type="pubsub")  # both hubs resubscribe; only the victim misses
                acked = []
                for i in range(n):
                    got = await host.call("notice", text=f"while away {i}")
                    assert got["ok"], got
                    acked.append(got["seq"])
                if trim:
                    r.xtrim(K.room_keys(room).hist, minid=f"{acked[-1]}-0", approximate=False)
                return acked
            finally:
                os.kill(pid, signal.SIGCONT)

        first = await host.call("notice", text="before")
        await viewer.wait_for(lambda: notices(viewer) == [first["seq"]], what="the first notice")

        # 1. history has them: filled in, in order, once; no fresh welcome
        acked = await missed(3)
        want = [first["seq"], *acked]
        await viewer.wait_for(lambda: notices(viewer) == want, timeout=10, what="the missed notices, repaired")
        after = await host.call("notice", text="after the repair")
        await viewer.wait_for(lambda: notices(viewer) == [*want, after["seq"]], what="the next notice")
        assert [f for f in viewer.frames if f["t"] == "welcome"] == []

        # 2. history trimmed past them (as MAXLEN does to a busy room): the viewer is told
        acked = await missed(3, trim=True)
        await viewer.wait_for(lambda: viewer.last_frame("welcome") is not None, timeout=10, what="a fresh welcome")
        hello = viewer.last_frame("welcome")
        assert hello is not None and hello["recovered"] is False and hello["seq"] >= acked[-1]
        seen = notices(viewer)
        assert acked[0] not in seen and acked[1] not in seen  # never sent out of order later
        last = await host.call("notice", text="after the fresh welcome")
        await viewer.wait_for(lambda: last["seq"] in notices(viewer), what="events after the fresh welcome")
        assert notices(viewer) == sorted(set(notices(viewer)))
        for h in (victim, other):
            assert "Traceback" not in h.log()
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        r.close()
        server.stop()


async def test_a_seq_reused_for_another_event_gets_a_fresh_welcome(hub: HubProcess, redis1: RedisProcess) -> None:
    """Redis loses its last two events (as a replica promoted while it lagged does) and hands
    their seqs out again: the hub notices the reused seq and its viewers get a fresh welcome
    instead of silently dropping the new events as duplicates. A viewer who was away meanwhile
    and resumes from a seq of the lost timeline gets a fresh welcome too: the room moved to a
    new epoch, so it is not handed the events after its seq while keeping the lost ones."""
    room = "reuse" + uuid.uuid4().hex[:8]
    viewer = await Client.connect(hub.base, room, token("v"))
    away = await Client.connect(hub.base, room, token("away"))
    host = await Client.connect(hub.base, room, token("host", role="host", rooms=[room]))
    r = redis.Redis.from_url(redis1.url)
    try:
        seqs = [(await host.call("notice", text=f"n{i}"))["seq"] for i in range(4)]
        await viewer.wait_for(lambda: notices(viewer) == seqs, what="four notices")
        await away.wait_for(lambda: notices(away) == seqs, what="four notices")
        old_epoch = away.welcome["epoch"]
        await away.close()
        k = K.room_keys(room)
        kept = r.xrange(k.hist, max=f"{seqs[1]}-0")  # the last two are lost: meta and history
        r.delete(k.hist)  # as the promoted replica has them, never having had the last two
        for entry_id, fields in kept:
            r.xadd(k.hist, fields, id=entry_id)
        r.hset(k.meta, "seq", seqs[1])
        again = await host.call("notice", text="after the loss")
        assert again.get("seq") == seqs[2], again  # a seq the viewer already had, for another event
        await viewer.wait_for(lambda: viewer.last_frame("welcome") is not None, what="a fresh welcome")
        hello = viewer.last_frame("welcome")
        assert hello is not None and hello["recovered"] is False and hello["seq"] >= again["seq"]
        later = await host.call("notice", text="later")
        # the event that reused a seq was acked: it is shown too, after the fresh welcome
        # (its seq the viewer already had: only the text tells them apart)
        texts = lambda: [e["text"] for e in viewer.of_type("notice")]  # noqa: E731
        await viewer.wait_for(lambda: texts()[-2:] == ["after the loss", "later"], what="the events after it")
        assert texts() == ["n0", "n1", "n2", "n3", "after the loss", "later"], texts()
        assert later["seq"] == seqs[3]  # the last seq `away` had, now another event
        assert r.hget(k.meta, "epoch").decode() != old_epoch  # the room left the lost timeline
        assert hello["epoch"] != old_epoch
        last = await host.call("notice", text="last")
        back = await Client.connect(hub.base, room, token("away"), since=seqs[3], epoch=old_epoch)
        try:
            assert back.welcome["recovered"] is False, back.welcome  # not handed only `last`
            assert back.welcome["seq"] >= last["seq"]
        finally:
            await back.close()
    finally:
        r.close()
        await viewer.close()
        await host.close()
