"""Likes add up exactly; the online count is right across hubs after joins and leaves."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid
from typing import Callable

from liveroom.redis_local import RedisProcess, find_server
from tests.support import Client, HubProcess, eventually, t, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0"}


def latest(c: Client, kind: str, field: str) -> int | None:
    """The latest value the viewer was shown: the last event, else its welcome's state
    (an unchanged count is not pushed again to a viewer who joined with it)."""
    vals = [e[field] for e in c.of_type(kind)]
    if vals:
        return vals[-1]
    shown = c.welcome.get("state", {}).get(kind)
    return shown if isinstance(shown, int) else None


async def test_likes_from_many_clients_add_up(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """40 clients on two hubs tapping in bursts: every viewer ends on the exact total."""
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    room = "likes" + uuid.uuid4().hex[:8]
    clients = [await Client.connect(hubs[i % 2].base, room, token(f"u{i}")) for i in range(40)]
    try:
        expected = 0
        sends = []
        for i, c in enumerate(clients):
            for n in (1, 7, 50, (i % 50) + 1):
                sends.append(c.send({"t": "like", "n": n}))
                expected += n
        await asyncio.gather(*sends)
        for c in clients:
            await c.wait_for(lambda c=c: latest(c, "likes", "total") == expected, what=f"likes total {expected}")
        # counters are not events: no viewer got one event per tap
        assert all(len(c.of_type("likes")) < 160 for c in clients)
        late = await Client.connect(hubs[0].base, room, token("late"))
        assert late.welcome["state"]["likes"] == expected
        await late.close()
    finally:
        for c in clients:
            await c.close()


async def test_like_n_out_of_range_is_refused(shared_hub: HubProcess) -> None:
    """n above 50 is `bad_field` and adds nothing."""
    room = "likes" + uuid.uuid4().hex[:8]
    c = await Client.connect(shared_hub.base, room, token("u"))
    try:
        r = await c.call("like", n=51)
        assert not r["ok"] and r["error"]["code"] == "bad_field"
        r = await c.call("like", n=3)
        assert r["ok"]
        await c.wait_for(lambda: latest(c, "likes", "total") == 3, what="likes 3")
    finally:
        await c.close()


async def test_online_count_across_hubs(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """Distinct users over two hubs, a user on both counted once, leaves counted."""
    hubs = [start_hub(LIVEROOM_REDIS=redis1.url, **FAST) for _ in range(2)]
    room = "online" + uuid.uuid4().hex[:8]
    a = [await Client.connect(hubs[0].base, room, token(f"a{i}")) for i in range(3)]
    b = [await Client.connect(hubs[1].base, room, token(f"b{i}")) for i in range(2)]
    # the same user on both hubs, twice on one: still one person
    twin = [
        await Client.connect(hubs[0].base, room, token("twin")),
        await Client.connect(hubs[1].base, room, token("twin")),
        await Client.connect(hubs[1].base, room, token("twin")),
    ]
    everyone = a + b + twin
    try:
        for c in everyone:
            await c.wait_for(lambda c=c: latest(c, "online", "count") == 6, what="online 6")
        for c in a[:2] + twin[1:]:
            await c.close()
        rest = [a[2], *b, twin[0]]
        for c in rest:
            await c.wait_for(lambda c=c: latest(c, "online", "count") == 4, what="online 4")
        await twin[0].close()
        for c in [a[2], *b]:
            await c.wait_for(lambda c=c: latest(c, "online", "count") == 3, what="online 3")
        # an unchanged count is not pushed again and again: that was most of what idle
        # viewers cost (it went out every 2 s; now every 30 s)
        before = [len(c.of_type("online")) for c in (a[2], *b)]
        await asyncio.sleep(3.0)
        assert [len(c.of_type("online")) for c in (a[2], *b)] == before, "an unchanged count was pushed again"
    finally:
        for c in everyone:
            if not c.closed.is_set():
                await c.close()


async def test_killed_hub_viewers_leave_the_count(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """A hub that dies without cleaning up stops counting once its heartbeat expires."""
    # a short hub TTL (default 10 s), so that the survivor reaps the dead hub's viewers soon
    env = {"LIVEROOM_REDIS": redis1.url, "LIVEROOM_HUB_TTL_MS": "3000", **FAST}
    h1 = start_hub(**env)
    h2 = start_hub(**env)
    room = "dead" + uuid.uuid4().hex[:8]
    stay = await Client.connect(h1.base, room, token("stay"))
    gone = [await Client.connect(h2.base, room, token(f"gone{i}")) for i in range(3)]
    try:
        await stay.wait_for(lambda: latest(stay, "online", "count") == 4, what="online 4")
        h2.kill()
        await stay.wait_for(lambda: latest(stay, "online", "count") == 1, timeout=10, what="online 1")
    finally:
        await stay.close()
        for c in gone:
            c._reader and c._reader.cancel()
            await c.session.close()


def _connections(h: HubProcess) -> float:
    """The hub's open-sockets gauge, read without Redis."""
    text = urllib.request.urlopen(h.base + "/metrics", timeout=t(5)).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("liveroom_connections"))


async def _drop(clients: list[Client]) -> None:
    """Phones vanishing: sockets closed without a WebSocket close handshake."""
    for c in clients:
        if c._reader is not None:
            c._reader.cancel()
    await asyncio.gather(*(c.session.close() for c in clients))


async def test_online_count_recovers_from_a_crowd_leaving_during_a_redis_stall(
    start_hub: Callable[..., HubProcess],
) -> None:
    """200 viewers drop at once while their shard stalls for longer than the Redis timeout:
    the count still comes back down to who is left once Redis answers again; then a hub
    stopping gracefully takes its viewers out of the count at once (not after hub_ttl)."""
    shard = RedisProcess(find_server()).start()  # our own: this test pauses it
    try:
        env = {"LIVEROOM_REDIS": shard.url, **FAST}
        h1, h2 = start_hub(**env), start_hub(**env)
        room = "crowd" + uuid.uuid4().hex[:8]
        watcher = await Client.connect(h2.base, room, token("watcher"))
        crowd = [await Client.connect(h1.base, room, token(f"c{i}")) for i in range(200)]
        await watcher.wait_for(lambda: latest(watcher, "online", "count") == 201, timeout=10, what="online 201")
        assert shard.proc is not None
        os.kill(shard.proc.pid, signal.SIGSTOP)
        try:
            await _drop(crowd)
            # h1 has seen the crowd go (its gauge needs no Redis) ...
            await eventually(lambda: _connections(h1) == 0, timeout=10, what="h1 dropping the crowd")
            # ... and its presence round (every 1 s) has run into the Redis timeout (0.8 s)
            await asyncio.sleep(2.0)
        finally:
            os.kill(shard.proc.pid, signal.SIGCONT)
        await watcher.wait_for(lambda: latest(watcher, "online", "count") == 1, timeout=8, what="online back to 1")

        crowd = [await Client.connect(h1.base, room, token(f"d{i}")) for i in range(100)]
        await watcher.wait_for(lambda: latest(watcher, "online", "count") == 101, timeout=10, what="online 101")
        h1.stop()  # SIGTERM: the hub says goodbye and removes its users itself
        # hub_ttl_ms is 10 s: within 5 s only h1's own cleanup can have done it
        await watcher.wait_for(lambda: latest(watcher, "online", "count") == 1, timeout=5, what="online 1 after stop")
        await _drop(crowd)
        await watcher.close()
    finally:
        shard.stop()
