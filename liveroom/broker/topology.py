"""Where a room lives in Redis: several standalone shards, or one Redis Cluster. The broker
asks a topology which client, which pipeline and which pub/sub node serve a room, and
never branches on the kind itself.

- `Shards`: a room's shard is `jump_hash(room) % n` (sharding.py); events go out with
  PUBLISH; one auto-pipeline and one pub/sub connection per shard.
- `Cluster`: Redis maps a room's hash tag to a slot and a master; events go out with
  SPUBLISH, so each message stays on the node that owns the room instead of crossing the
  whole cluster bus; one auto-pipeline and one pub/sub connection per master, followed to
  the new owner when a slot moves (resharding, failover).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Protocol, TypeVar
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, ClusterDownError, ReadOnlyError, RedisError, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from liveroom.broker import keys as K
from liveroom.broker.pipeline import AutoPipeline
from liveroom.broker.scripts import Script
from liveroom.broker.sharding import shard_of
from liveroom.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

POOL_SIZE = 64
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
_FAILING_OVER = (ClusterDownError, TryAgainError, ReadOnlyError)


async def bounded(aw: Awaitable[T], timeout: float) -> T:
    """Answer within `timeout`, mapping "unreachable" to Unavailable."""
    try:
        # asyncio.timeout, not wait_for: wait_for wraps every call in a new task
        async with asyncio.timeout(timeout):
            return await aw
    except UNREACHABLE as exc:
        raise Unavailable(f"Redis did not answer ({type(exc).__name__})") from None
    except _FAILING_OVER as exc:
        raise Unavailable(str(exc) or type(exc).__name__) from None
    except RedisError as exc:
        # a cluster between two slot maps: too many redirects (ClusterError), a replica whose
        # master is down (MASTERDOWN), a slot nobody covers for now
        if exc.__class__.__name__ in ("MaxConnectionsError", "SlotNotCoveredError", "ClusterError", "MasterDownError"):
            raise Unavailable(str(exc) or exc.__class__.__name__) from None
        raise


def pool(url: str, timeout: float, **node: Any) -> aioredis.BlockingConnectionPool:
    """A burst of thousands of buys waits for one of POOL_SIZE connections instead of
    failing: Redis runs scripts one at a time anyway, more sockets only add overhead."""
    p = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    p.connection_kwargs.update(node)  # host and port of one cluster node, else as the URL says
    return p


def cluster_client(seeds: tuple[str, ...], timeout: float, socket_timeout: float | None = None) -> RedisCluster:
    """A cluster client (not yet initialized). The first seed gives credentials and TLS;
    every seed is a startup node, so a process comes up while any one of them is down."""
    first, *others = seeds
    nodes = [urlparse(u) for u in others]
    return RedisCluster.from_url(
        first,
        startup_nodes=[ClusterNode(u.hostname or "127.0.0.1", u.port or 6379) for u in nodes],
        socket_timeout=timeout if socket_timeout is None else socket_timeout,
        socket_connect_timeout=timeout,
    )


def pubsub_client(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), health_check_interval=5)


def _busy(exc: ResponseError) -> None:
    if str(exc).startswith("BUSY"):  # a script running past its time limit
        raise Unavailable(str(exc)) from None


class Topology(Protocol):
    sharded: bool  # SPUBLISH/SSUBSCRIBE
    follows_slots: bool  # rooms may move between pub/sub nodes

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping_all(self) -> bool: ...
    def client(self, room: str) -> Any:
        """The redis-py client for plain commands on the room's keys."""

    async def call(self, script: Script, room: str, keys: list[str], args: list[Any], replicas: int = 0, wait_ms: int = 0) -> Any:
        """EVALSHA on the room's node, answering Unavailable when it cannot (`replicas`:
        then WAIT for them on the same connection, at most wait_ms)."""

    def node(self, room: str) -> tuple[str, str]:
        """(name, URL) of the node whose pub/sub carries the room's channel."""

    async def relearn(self) -> None:
        """Read where rooms live again (a cluster's slot map)."""

    def orders_stream(self, room: str) -> str: ...
    def registries(self) -> list[Any]:
        """One client per place the list of rooms with sales lives."""


class Shards:
    sharded = False
    follows_slots = False

    def __init__(self, urls: tuple[str, ...], timeout: float) -> None:
        self.urls = urls
        self.timeout = timeout
        self._clients: list[aioredis.Redis] = []
        self._pipes: list[AutoPipeline] = []

    async def start(self) -> None:
        self._clients = [aioredis.Redis(connection_pool=pool(u, self.timeout), retry=Retry(NoBackoff(), 0)) for u in self.urls]
        self._pipes = [AutoPipeline(c.connection_pool, self.timeout) for c in self._clients]

    async def close(self) -> None:
        for p in self._pipes:
            await p.close()
        for c in self._clients:
            await c.aclose()

    async def ping_all(self) -> bool:
        return all(await asyncio.gather(*(bounded(c.ping(), self.timeout) for c in self._clients)))

    def client(self, room: str) -> Any:
        return self._clients[shard_of(room, len(self._clients))]

    async def call(self, script: Script, room: str, keys: list[str], args: list[Any], replicas: int = 0, wait_ms: int = 0) -> Any:
        try:
            pipe = self._pipes[shard_of(room, len(self._pipes))]
            return await script.via(pipe, keys, args, replicas, wait_ms)  # bounded by the pipeline
        except ResponseError as exc:
            _busy(exc)
            raise

    def node(self, room: str) -> tuple[str, str]:
        idx = shard_of(room, len(self.urls))
        return str(idx), self.urls[idx]

    async def relearn(self) -> None:
        pass  # a room's shard never changes

    def orders_stream(self, room: str) -> str:
        return K.SHARD_ORDERS_STREAM

    def registries(self) -> list[Any]:
        return list(self._clients)


class Cluster:
    sharded = True
    follows_slots = True

    def __init__(self, seeds: tuple[str, ...], timeout: float) -> None:
        self.seeds = seeds
        self.timeout = timeout
        self.client_: RedisCluster | None = None
        self._pipes: dict[str, AutoPipeline] = {}  # one per master, by node name
        self._retired: list[AutoPipeline] = []  # pipes to former masters
        self._relearned_at = 0.0
        self._relearning: set[asyncio.Task[None]] = set()

    @property
    def cluster(self) -> RedisCluster:
        assert self.client_ is not None, "start() first"
        return self.client_

    async def start(self) -> None:
        self.client_ = cluster_client(self.seeds, self.timeout)
        await self.client_.initialize()

    async def close(self) -> None:
        for p in [*self._pipes.values(), *self._retired]:
            await p.close()
            await p.pool.disconnect()
        if self.client_ is not None:
            await self.client_.aclose()

    async def ping_all(self) -> bool:
        return bool(await bounded(self.cluster.ping(target_nodes=RedisCluster.PRIMARIES), self.timeout))

    def client(self, room: str) -> Any:
        return self.cluster

    def _pipe(self, key: str) -> AutoPipeline | None:
        """The auto-pipeline to the master serving `key`'s slot (as last known)."""
        try:
            node = self.cluster.get_node_from_key(key)
        except Exception:  # slot not covered right now: let the cluster client sort it out
            return None
        if node is None:
            return None
        pipe = self._pipes.get(node.name)
        if pipe is None:
            pipe = self._pipes[node.name] = AutoPipeline(pool(self.seeds[0], self.timeout, host=node.host, port=node.port), self.timeout)
        return pipe

    async def call(self, script: Script, room: str, keys: list[str], args: list[Any], replicas: int = 0, wait_ms: int = 0) -> Any:
        # (a call that goes through the cluster client - slot unknown, a redirect - does not
        # WAIT: redis-py may answer it on any pooled connection)
        pipe = self._pipe(keys[0])
        if pipe is None:
            return await bounded(script(self.cluster, keys, args), self.timeout)
        try:
            return await script.via(pipe, keys, args, replicas, wait_ms)  # the pipeline bounds the wait
        except Unavailable:
            self._relearn_soon()  # the node may have failed over
            raise
        except AskError:  # MOVED or ASK: the cluster client follows the redirect and
            # updates its slot map, which the next call's _pipe reads
            return await bounded(script(self.cluster, keys, args), self.timeout)
        except _FAILING_OVER as exc:
            self._relearn_soon()  # a replica became master, or is becoming one
            raise Unavailable(str(exc) or type(exc).__name__) from None
        except ResponseError as exc:
            _busy(exc)
            raise

    def _relearn_soon(self) -> None:
        """Re-read the slot map in the background, at most once a second: the per-node
        pipelines bypass the cluster client, which would otherwise never learn of a
        failover from them."""
        now = asyncio.get_running_loop().time()
        if now - self._relearned_at < 1.0:
            return
        self._relearned_at = now

        async def relearn() -> None:
            try:
                await self.relearn()
            except Exception as exc:
                log.warning("cluster topology refresh failed: %s", exc)

        task = asyncio.create_task(relearn())
        self._relearning.add(task)
        task.add_done_callback(self._relearning.discard)

    def node(self, room: str) -> tuple[str, str]:
        try:
            node = self.cluster.get_node_from_key(K.room_keys(room).meta)
        except Exception:
            node = None
        if node is None:
            raise Unavailable("no cluster node owns this room's slot")
        return f"{node.host}:{node.port}", f"redis://{node.host}:{node.port}/0"

    async def relearn(self) -> None:
        async with asyncio.timeout(self.timeout * 2):
            await self.cluster.nodes_manager.initialize()
        self._relearned_at = asyncio.get_running_loop().time()
        masters = {n.name for n in self.cluster.get_primaries()}
        for name in [n for n in self._pipes if n not in masters]:
            # a master that died or became a replica: no new calls; the calls in flight
            # end by themselves (timeout), then the pool is closed with the others
            self._retired.append(self._pipes.pop(name))

    def orders_stream(self, room: str) -> str:
        return K.room_keys(room).room_orders_stream  # a script cannot write another slot's key

    def registries(self) -> list[Any]:
        return [self.cluster]
