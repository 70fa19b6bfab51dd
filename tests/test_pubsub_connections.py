"""A fresh hub opens one pub/sub connection per shard (per master on a cluster), however many
first subscriptions arrive at once, and confirms every one of them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Callable

import psutil
import redis

from liveroom.redis_local import RedisClusterProcesses, RedisProcess
from tests.support import Client, HubProcess, t

JOINS = 200
ROOMS = 100


def pubsub_connections(port: int, hub: HubProcess) -> int:
    """How many of the hub's connections to the Redis on `port` are in subscriber mode:
    CLIENT LIST TYPE pubsub, matched to the hub process by the connections' local ports."""
    assert hub.proc is not None
    mine = {
        c.laddr.port
        for c in psutil.Process(hub.proc.pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port
    }
    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        clients = r.client_list(_type="pubsub")
    finally:
        r.close()
    return sum(1 for c in clients if int(c["addr"].rsplit(":", 1)[1]) in mine)


async def burst_of_first_joins(hub: HubProcess, ports: list[int]) -> None:
    """JOINS viewers into ROOMS rooms the hub has never seen, all at once: every one is
    welcomed, and the hub holds one subscribed connection to each Redis node."""
    prefix = "burst" + uuid.uuid4().hex[:6]
    results = await asyncio.gather(
        *(Client.connect(hub.base, f"{prefix}-{i % ROOMS}", None) for i in range(JOINS)),
        return_exceptions=True,
    )
    clients = [c for c in results if isinstance(c, Client)]
    try:
        failed = [repr(e) for e in results if not isinstance(e, Client)]
        counts = [pubsub_connections(p, hub) for p in ports]
        assert not failed, f"{len(failed)} of {JOINS} joins failed, e.g. {failed[:1]}; pub/sub connections {counts}"
        assert counts == [1] * len(ports), counts
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


HUB_ENV = {
    "LIVEROOM_ANONYMOUS": "1",
    # generous: the machine is shared; the defect leaves confirmations unread, not late
    "LIVEROOM_REDIS_TIMEOUT_MS": str(int(t(2000))),
}


async def test_first_joins_burst_standalone(
    start_hub: Callable[..., HubProcess], shards2: list[RedisProcess]
) -> None:
    h = start_hub(LIVEROOM_REDIS=",".join(s.url for s in shards2), **HUB_ENV)
    await burst_of_first_joins(h, [s.port for s in shards2])


async def test_first_joins_burst_cluster(
    start_hub: Callable[..., HubProcess], cluster3: RedisClusterProcesses
) -> None:
    h = start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url, **HUB_ENV)
    await burst_of_first_joins(h, [n.port for n in cluster3.nodes])
