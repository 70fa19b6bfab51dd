"""A hub wrongly declared dead (frozen past hub_ttl_ms, so another hub reaped its users)
notices when it comes back and puts its users back: the online count recovers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from typing import Callable

from liveroom.broker.base import BrokerEvents
from liveroom.broker.redis import RedisBroker
from liveroom.config import RedisConfig
from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, t, token

ENV = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_HUB_TTL_MS": "1500"}


def online(c: Client) -> int | None:
    counts = [e["count"] for e in c.of_type("online")]
    return counts[-1] if counts else None


async def test_wrongly_reaped_hub_registers_its_users_again(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    frozen, other = (start_hub(LIVEROOM_REDIS=redis1.url, **ENV) for _ in range(2))
    room = "reap" + uuid.uuid4().hex[:8]
    clients = [await Client.connect(frozen.base, room, token(f"f{i}")) for i in range(3)]
    watcher = await Client.connect(other.base, room, token("w"))
    clients.append(watcher)
    try:
        await watcher.wait_for(lambda: online(watcher) == 4, what="online 4")
        assert frozen.proc is not None
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        try:
            # past hub_ttl_ms the other hub takes the frozen one for dead and reaps its users
            await watcher.wait_for(lambda: online(watcher) == 1, timeout=10, what="the frozen hub's users reaped")
            await asyncio.sleep(t(1))  # frozen a little longer: the reap is done and seen
        finally:
            os.kill(frozen.proc.pid, signal.SIGCONT)
        await watcher.wait_for(lambda: online(watcher) == 4, timeout=10, what="online back to 4")
        for c in clients[:3]:
            await c.wait_for(lambda c=c: online(c) == 4, timeout=10, what="online 4 on the frozen hub")
        assert "Traceback" not in frozen.log() + other.log()
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()


async def test_a_hub_beating_again_is_not_reaped(redis1: RedisProcess) -> None:
    """Hub two's beat finds hub one dead; hub one beats again before the reap call: the reap
    leaves its users alone (a reap of a hub still dead goes through)."""
    room = "reap" + uuid.uuid4().hex[:8]
    one, two = (RedisBroker(RedisConfig(urls=(redis1.url,)), f"hub-{n}-{room}", 100) for n in (1, 2))
    for b in (one, two):
        await b.start(BrokerEvents(lambda r, m: None, lambda rooms: None))
    try:
        await one.presence_sync(room, ["alice", "bob"], [], 50, {})
        await asyncio.sleep(0.1)  # one's heartbeat (50 ms) expires
        beat = await two.presence_beat(room, 10_000)
        assert one.hub_id in beat.dead
        await one.presence_beat(room, 10_000, 2)  # one is back
        assert await two.presence_reap(room, one.hub_id, only_dead=True) == 2
        await one.presence_sync(room, [], [], 50, {})
        await asyncio.sleep(0.1)
        assert await two.presence_reap(room, one.hub_id, only_dead=True) == 0
    finally:
        for b in (one, two):
            await b.close()
