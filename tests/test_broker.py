"""The broker against real Redis: scripts survive a script-cache flush (restart, failover)."""

from __future__ import annotations

import uuid

import redis

from liveroom.redis_local import RedisClusterProcesses, RedisProcess
from tests.support import Client, HubProcess, token


async def test_ops_survive_script_flush(hub: HubProcess, redis1: RedisProcess) -> None:
    """After SCRIPT FLUSH the next call reloads the script: the comment still goes out."""
    room = "flush" + uuid.uuid4().hex[:8]
    c = await Client.connect(hub.base, room, token("u"))
    try:
        assert (await c.call("comment", text="one"))["ok"]
        r = redis.Redis.from_url(redis1.url)
        r.script_flush()
        r.close()
        assert (await c.call("comment", text="two"))["ok"]
        await c.wait_for(lambda: len(c.of_type("comment")) == 2, what="both comments")
    finally:
        await c.close()


async def test_cluster_script_flush(start_hub, cluster3: RedisClusterProcesses) -> None:  # type: ignore[no-untyped-def]
    """The same on a cluster: the script is loaded on the node that owns the room."""
    h = start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url)
    room = "flush" + uuid.uuid4().hex[:8]
    c = await Client.connect(h.base, room, token("u"))
    try:
        assert (await c.call("comment", text="one"))["ok"]
        for n in cluster3.nodes:
            r = redis.Redis.from_url(n.url)
            r.script_flush()
            r.close()
        assert (await c.call("comment", text="two"))["ok"]
    finally:
        await c.close()
