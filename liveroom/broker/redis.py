"""The Redis broker: shards, their pub/sub listeners, and the room operations as scripts.

Two topologies behind one interface:
- several standalone Redis servers: a room's shard is `jump_hash(room) % n` (sharding.py);
  events go out with PUBLISH;
- one Redis Cluster: Redis maps a room's hash tag to a slot and a node; events go out with
  SPUBLISH, so each message stays on the node that owns the room instead of being
  broadcast across the whole cluster bus, and each master node has its own listener.

The broker speaks bytes and small tuples; it knows nothing of WebSockets or viewers.
Pub/sub payloads are the ones the scripts write: "D<seq> <epoch>\\n<body>" for a durable
event, "L<total>" for the likes total.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, Awaitable, TypeVar
from urllib.parse import urlparse

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.asyncio.retry import Retry

from liveroom.broker import keys as K
from liveroom.broker.base import (
    BrokerEvents,
    BrokerMsg,
    DurableMsg,
    LikesMsg,
    RoomState,
    SaleRecord,
    StockMsg,
)
from liveroom.broker.listener import ShardListener
from liveroom.broker.pipeline import AutoPipeline
from liveroom.broker.scripts import Scripts
from liveroom.broker.sharding import shard_of
from liveroom.config import RedisConfig
from liveroom.errors import MUTED, NO_SUCH_SALE, RATE_LIMITED, Unavailable, refusal

log = logging.getLogger(__name__)
T = TypeVar("T")


# users per presence_sync call: ~1 ms of script time on a shard
PRESENCE_CHUNK = 1000


def parse_message(data: bytes) -> BrokerMsg | None:
    """A pub/sub payload as written by the Lua scripts; None for anything else."""
    kind = data[:1]
    if kind == b"D":
        head, sep, body = data.partition(b"\n")
        seq, _, epoch = head[1:].partition(b" ")
        if not sep:
            return None
        return DurableMsg(int(seq), epoch.decode(), body)
    if kind == b"L":
        return LikesMsg(int(data[1:]))
    if kind == b"S":
        sale, _, remaining = data[1:].partition(b" ")
        return StockMsg(sale.decode(), int(remaining))
    return None


def sale_records(fields: dict[bytes, bytes]) -> list[SaleRecord]:
    """The room's sales hash (<sale>:info|stock|status|n) as records, by sale id."""
    out = []
    for key in sorted(fields):
        if key.endswith(b":info"):
            sale = key[:-5]
            out.append(
                SaleRecord(
                    id=sale.decode(),
                    info=msgpack.unpackb(fields[key]),
                    stock=int(fields.get(sale + b":stock", 0)),
                    status=fields.get(sale + b":status", b"closed").decode(),
                )
            )
    return out


def new_epoch() -> str:
    return secrets.token_hex(4)


POOL_SIZE = 64
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisBroker:
    def __init__(self, cfg: RedisConfig, hub_id: str, history_len: int) -> None:
        if not cfg.urls and not cfg.cluster:
            raise ValueError("no Redis configured")
        self._cfg = cfg
        self.hub_id = hub_id
        self._history_len = str(history_len)
        self._events: BrokerEvents | None = None  # core's handlers, given at start
        self._timeout = cfg.timeout_ms / 1000
        self.clustered = bool(cfg.cluster)
        self._pubcmd = "SPUBLISH" if self.clustered else "PUBLISH"
        self._clients: list[aioredis.Redis] = []
        self._pipes: list[AutoPipeline] = []  # one per standalone shard, for scripts
        self._node_pipes: dict[str, AutoPipeline] = {}  # cluster: one per master, by name
        self._refreshed_at = 0.0
        self._refreshing: set[asyncio.Task[None]] = set()
        self._cluster: RedisCluster | None = None
        self._listeners: dict[str, ShardListener] = {}
        self._room_listener: dict[str, ShardListener] = {}
        self._relocating: set[ShardListener] = set()
        self.scripts: Scripts

    # -- lifecycle -------------------------------------------------------------------------

    def _client(self, url: str, *, pubsub: bool) -> aioredis.Redis:
        if pubsub:
            return aioredis.Redis.from_url(
                url,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=5,
            )
        # A burst of thousands of buys waits for one of POOL_SIZE connections instead of
        # failing: Redis runs scripts one at a time anyway, more sockets only add overhead.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=self._timeout,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
        )
        return aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))

    async def start(self, events: BrokerEvents) -> None:
        self._events = events
        if self.clustered:
            # the first seed gives credentials and TLS; every seed is a startup node, so the
            # hub comes up while any one of them is down
            first, *others = self._cfg.cluster
            seeds = [urlparse(u) for u in others]
            self._cluster = RedisCluster.from_url(
                first,
                startup_nodes=[ClusterNode(u.hostname or "127.0.0.1", u.port or 6379) for u in seeds],
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
            )
            await self._cluster.initialize()
            self.scripts = Scripts()
        else:
            self._clients = [self._client(u, pubsub=False) for u in self._cfg.urls]
            self._pipes = [AutoPipeline(c.connection_pool, self._timeout) for c in self._clients]
            self.scripts = Scripts()

    async def close(self) -> None:
        for listener in self._listeners.values():
            await listener.close()
        for p in [*self._pipes, *self._node_pipes.values()]:
            await p.close()
        for p in self._node_pipes.values():
            await p.pool.disconnect()  # the standalone shards' pools close with their clients
        for c in self._clients:
            await c.aclose()
        if self._cluster is not None:
            await self._cluster.aclose()

    async def ping_all(self) -> bool:
        """True when every shard (or every cluster master) answers."""
        try:
            if self._cluster is not None:
                return bool(await self._bounded(self._cluster.ping(target_nodes=RedisCluster.PRIMARIES)))
            results = await asyncio.gather(*(self._bounded(c.ping()) for c in self._clients))
            return all(results)
        except Unavailable:
            return False

    # -- plumbing --------------------------------------------------------------------------

    async def _bounded(self, aw: Awaitable[T]) -> T:
        """Answer within the configured timeout, mapping "unreachable" to Unavailable."""
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every call in a new task
            async with asyncio.timeout(self._timeout):
                return await aw
        except _UNREACHABLE as exc:
            raise Unavailable(f"Redis did not answer ({type(exc).__name__})") from None
        except (ClusterDownError, TryAgainError, ReadOnlyError) as exc:
            raise Unavailable(str(exc) or type(exc).__name__) from None
        except RedisError as exc:
            if exc.__class__.__name__ in ("ClusterDownError", "MaxConnectionsError", "SlotNotCoveredError"):
                raise Unavailable(str(exc)) from None
            raise

    def _cmd(self, room: str) -> Any:
        """The client that runs commands for `room`."""
        if self._cluster is not None:
            return self._cluster
        return self._clients[shard_of(room, len(self._clients))]

    def _node_pipe(self, key: str) -> AutoPipeline | None:
        """The auto-pipeline to the cluster master serving `key`'s slot (as last known)."""
        assert self._cluster is not None
        try:
            node = self._cluster.get_node_from_key(key)
        except Exception:  # slot not covered right now: let the cluster client sort it out
            return None
        if node is None:
            return None
        pipe = self._node_pipes.get(node.name)
        if pipe is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                self._cfg.cluster[0],  # credentials and TLS as for the cluster, then this node
                max_connections=POOL_SIZE,
                timeout=self._timeout,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
            )
            pool.connection_kwargs.update(host=node.host, port=node.port)
            pipe = self._node_pipes[node.name] = AutoPipeline(pool, self._timeout)
        return pipe

    def _refresh_topology(self) -> None:
        """Re-read the cluster's slot map in the background, at most once a second: our
        per-node pipelines bypass the cluster client, which would otherwise never learn of
        a failover from them."""
        now = asyncio.get_running_loop().time()
        if self._cluster is None or now - self._refreshed_at < 1.0:
            return
        self._refreshed_at = now

        async def refresh() -> None:
            assert self._cluster is not None
            try:
                await self._cluster.nodes_manager.initialize()
            except Exception as exc:
                log.warning("cluster topology refresh failed: %s", exc)

        task = asyncio.create_task(refresh())
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _script(self, name: str, room: str, keys: list[str], args: list[Any]) -> Any:
        script = self.scripts[name]
        if self._cluster is not None:
            pipe = self._node_pipe(keys[0])
            if pipe is None:
                return await self._bounded(script(self._cluster, keys, args))
        else:
            pipe = self._pipes[shard_of(room, len(self._pipes))]
        try:
            return await script.via(pipe, keys, args)  # the pipeline bounds the wait
        except Unavailable:
            if self._cluster is not None:
                self._refresh_topology()  # the node may have failed over: relearn the slots
            raise
        except AskError:  # MOVED or ASK: a slot moved
            if self._cluster is None:
                raise
            # the cluster client follows the redirect and updates its slot map, which the
            # next call's _node_pipe reads
            return await self._bounded(script(self._cluster, keys, args))
        except (ClusterDownError, TryAgainError, ReadOnlyError) as exc:
            if self._cluster is not None:
                self._refresh_topology()  # failing over: a replica became master, or is
            raise Unavailable(str(exc) or type(exc).__name__) from None
        except ResponseError as exc:
            if str(exc).startswith("BUSY"):  # a script running past its time limit
                raise Unavailable(str(exc)) from None
            raise

    # -- pub/sub ---------------------------------------------------------------------------

    def _deliver(self, channel: bytes, data: bytes) -> None:
        msg = parse_message(data)
        if msg is not None:
            assert self._events is not None
            self._events.on_message(K.room_of_channel(channel), msg)

    def _listener_for(self, room: str) -> ShardListener:
        if self._cluster is not None:
            node = self._cluster.get_node_from_key(K.room_keys(room).meta)
            if node is None:
                raise Unavailable("no cluster node owns this room's slot")
            name = f"{node.host}:{node.port}"
            url = f"redis://{node.host}:{node.port}/0"
        else:
            idx = shard_of(room, len(self._clients))
            name = str(idx)
            url = self._cfg.urls[idx]
        listener = self._listeners.get(name)
        if listener is None:
            client = self._client(url, pubsub=True)
            listener = ShardListener(client, self._deliver, sharded=self.clustered, name=name)
            listener.on_reconnect = lambda n=name: self._reconnected(n)
            listener.on_moved = self._channel_moved
            if self._cluster is not None:
                listener.on_unreachable = lambda lst=listener: self._unreachable(lst)
            listener.start()
            self._listeners[name] = listener
        return listener

    def _reconnected(self, name: str) -> None:
        rooms = [r for r, lst in self._room_listener.items() if lst.name == name]
        if self._events is not None:
            self._events.on_reconnect(rooms)

    def _channel_moved(self, channel: bytes) -> None:
        room = K.room_of_channel(channel)
        task = asyncio.create_task(self._follow(room, self._room_listener.get(room)))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _follow(self, room: str, old: ShardListener | None) -> None:
        """Subscribe a room again on the node that now owns its slot, then have the hub
        fetch from history whatever was published while it was moving."""
        assert self._cluster is not None
        for attempt in range(20):
            if old is None or self._room_listener.get(room) is not old:
                return  # unsubscribed (or already followed) meanwhile
            try:
                await self._cluster.nodes_manager.initialize()  # relearn who owns what
                listener = self._listener_for(room)
                await listener.subscribe(K.room_keys(room).channel, self._timeout)
            except (Unavailable, RedisError, OSError, asyncio.TimeoutError) as exc:
                log.warning("room %s: resubscribe after a slot move failed (%r); retrying", room, exc)
                await asyncio.sleep(0.5)
                continue
            if self._room_listener.get(room) is not old:  # unsubscribed while we waited
                await listener.unsubscribe(K.room_keys(room).channel)
                return
            self._room_listener[room] = listener
            log.info("room %s: following its slot to %s", room, listener.name)
            if self._events is not None:
                self._events.on_reconnect([room])
            return
        log.error("room %s: could not follow its slot; its viewers get no events", room)

    def _unreachable(self, old: ShardListener) -> None:
        """A cluster listener cannot reconnect to its node. If the node is dead for good, a
        replica takes its slots over, and Redis tells nobody: look at the slot map again
        (the listener calls this after every failed attempt until its rooms have moved)."""
        if old in self._relocating:
            return
        self._relocating.add(old)
        task = asyncio.create_task(self._relocate(old))
        self._refreshing.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._refreshing.discard(t)
            self._relocating.discard(old)

        task.add_done_callback(done)

    async def _relocate(self, old: ShardListener) -> None:
        """Subscribe the rooms of `old` whose slots have a new owner on their new nodes, then
        have the hub fetch from history what was published meanwhile."""
        assert self._cluster is not None
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._cluster.nodes_manager.initialize()
        except Exception as exc:  # the cluster may be down for a moment: the next attempt
            log.info("pub/sub %s: slot map not refreshed (%r)", old.name, exc)
            return
        self._refreshed_at = asyncio.get_running_loop().time()
        rooms = [r for r, lst in self._room_listener.items() if lst is old and self._owner(r) not in (None, old.name)]
        moved = [r for r, ok in zip(rooms, await asyncio.gather(*(self._move(r, old) for r in rooms))) if ok]
        if moved:
            log.warning("pub/sub %s unreachable: %d room(s) moved to their slots' new owners", old.name, len(moved))
            if self._events is not None:
                self._events.on_reconnect(moved)
        if old.channels == 0 and self._listeners.get(old.name) is old:
            del self._listeners[old.name]  # nothing left to listen to on a dead node
            await old.close()

    def _owner(self, room: str) -> str | None:
        """The listener name of the node that owns the room's slot in the client's map."""
        assert self._cluster is not None
        try:
            node = self._cluster.get_node_from_key(K.room_keys(room).meta)
        except Exception:
            return None
        return None if node is None else f"{node.host}:{node.port}"

    async def _move(self, room: str, old: ShardListener) -> bool:
        channel = K.room_keys(room).channel
        try:
            new = self._listener_for(room)
            await new.subscribe(channel, self._timeout)
        except (Unavailable, RedisError, OSError, asyncio.TimeoutError) as exc:
            log.warning("room %s: subscribing on its slot's new owner failed (%r); retrying", room, exc)
            return False
        if self._room_listener.get(room) is not old:  # unsubscribed (or moved) meanwhile
            if self._room_listener.get(room) is not new:
                try:
                    await asyncio.wait_for(new.unsubscribe(channel), self._timeout)
                except _UNREACHABLE + (RedisError,):
                    pass
            return False
        old.forget(channel)
        self._room_listener[room] = new
        return True

    async def subscribe(self, room: str) -> None:
        listener = self._listener_for(room)
        self._room_listener[room] = listener
        try:
            await listener.subscribe(K.room_keys(room).channel, self._timeout)
        except _UNREACHABLE + (RedisError,) as exc:
            self._room_listener.pop(room, None)
            raise Unavailable(f"could not subscribe ({type(exc).__name__})") from None

    async def unsubscribe(self, room: str) -> None:
        listener = self._room_listener.pop(room, None)
        if listener is None:
            return
        try:
            await asyncio.wait_for(listener.unsubscribe(K.room_keys(room).channel), self._timeout)
        except _UNREACHABLE + (RedisError,):
            log.warning("unsubscribe %s failed; the listener drops its messages", room)

    # -- room operations -------------------------------------------------------------------

    async def state(self, room: str) -> RoomState:
        k = K.room_keys(room)
        flat, online, first, sales = await self._script(
            "room_state", room, [k.meta, k.ref, k.hist, k.sales], [new_epoch()]
        )
        meta = dict(zip(flat[::2], flat[1::2]))
        pinned = meta.get(b"pinned")
        return RoomState(
            seq=int(meta.get(b"seq", 0)),
            epoch=meta[b"epoch"].decode(),
            first_seq=int(first),
            online=int(online),
            likes=int(meta.get(b"likes", 0)),
            comments=int(meta.get(b"comments", 0)),
            peak=int(meta.get(b"peak", 0)),
            pinned=msgpack.unpackb(pinned) if pinned else None,
            sales=sale_records(dict(zip(sales[::2], sales[1::2]))),
            orders_confirmed=int(meta.get(b"orders_confirmed", 0)),
            orders_pending=int(meta.get(b"orders_pending", 0)),
            gmv_confirmed=int(meta.get(b"gmv_confirmed", 0)),
            gmv_pending=int(meta.get(b"gmv_pending", 0)),
        )

    async def history(self, room: str, after_seq: int, count: int) -> list[tuple[int, bytes]]:
        """Durable events with seq > after_seq, oldest first: (seq, body)."""
        entries = await self._bounded(
            self._cmd(room).xrange(K.room_keys(room).hist, min=f"({after_seq}-0", max="+", count=count)
        )
        out = []
        for entry_id, fields in entries:
            out.append((int(entry_id.split(b"-", 1)[0]), fields[b"e"]))
        return out

    async def publish_comment(
        self, room: str, body: bytes, user: str, rate: float, burst: int
    ) -> tuple[int, str]:
        """(seq, epoch); refused `muted` or `rate_limited` (the allowance over all hubs)."""
        k = K.room_keys(room)
        seq, epoch = await self._script(
            "room_comment",
            room,
            [k.meta, k.hist, k.mutes, k.rate(user)],
            [self._pubcmd, k.channel, body, new_epoch(), self._history_len, user, rate, burst],
        )
        if seq == -1:
            until = int(epoch)
            raise refusal(MUTED, "" if until < 0 else f"until {until}")
        if seq == -2:
            raise refusal(RATE_LIMITED)
        return int(seq), epoch.decode()

    async def publish_event(self, room: str, body: bytes, meta_field: str = "", value: bytes = b"") -> tuple[int, str]:
        k = K.room_keys(room)
        seq, epoch = await self._script(
            "room_publish",
            room,
            [k.meta, k.hist],
            [self._pubcmd, k.channel, body, new_epoch(), self._history_len, meta_field, value],
        )
        return int(seq), epoch.decode()

    async def add_likes(self, room: str, n: int) -> int:
        k = K.room_keys(room)
        return int(await self._script("room_like", room, [k.meta], [self._pubcmd, k.channel, n]))

    async def mute(self, room: str, user: str, until_ms: int | None) -> None:
        """until_ms None unmutes; -1 mutes forever."""
        k = K.room_keys(room)
        if until_ms is None:
            await self._bounded(self._cmd(room).hdel(k.mutes, user))
        else:
            await self._bounded(self._cmd(room).hset(k.mutes, user, until_ms))

    async def presence_sync(self, room: str, arrived: list[str], gone: list[str], ttl_ms: int) -> int:
        """Make this hub's users of the room in Redis match `arrived`/`gone`; the online count.

        Chunked so that one script never holds the shard for long (a few ms per chunk)."""
        k = K.room_keys(room)
        keys = [k.ref, k.hubs, k.hub_users(self.hub_id), k.meta]
        online = 0
        step = PRESENCE_CHUNK
        for i in range(0, max(len(arrived), len(gone), 1), step):
            a, g = arrived[i : i + step], gone[i : i + step]
            online = int(await self._script("presence_sync", room, keys, [self.hub_id, ttl_ms, len(a), *a, *g]))
        return online

    async def presence_beat(self, room: str, ttl_ms: int, expect: int = -1) -> tuple[int, bool, list[str]]:
        """(online, whether this hub's users are missing from Redis, ids of dead hubs to
        reap). `expect`: how many users this hub holds in the room (-1: don't check)."""
        k = K.room_keys(room)
        out = await self._script(
            "presence_beat", room, [k.hubs, k.ref, k.meta, k.hub_users(self.hub_id)], [self.hub_id, ttl_ms, expect]
        )
        return int(out[0]), bool(int(out[1])), [h.decode() for h in out[2:]]

    async def presence_reap(self, room: str, hub_id: str) -> int:
        k = K.room_keys(room)
        return int(await self._script("presence_reap", room, [k.ref, k.hubs, k.hub_users(hub_id)], [hub_id]))

    # -- flash sales -----------------------------------------------------------------------

    def orders_stream(self, room: str) -> str:
        return K.room_keys(room).room_orders_stream if self.clustered else K.SHARD_ORDERS_STREAM

    async def sale_create(self, room: str, sale: str, info: bytes, stock: int, body: bytes) -> tuple[int, str]:
        k = K.room_keys(room)
        # registered first: the order reaper must know every room that can hold an order
        await self._bounded(self._cmd(room).sadd(K.SALE_ROOMS, room))
        seq, epoch = await self._script(
            "sale_create",
            room,
            [k.sales, k.meta, k.hist],
            [self._pubcmd, k.channel, body, new_epoch(), self._history_len, sale, info, stock],
        )
        return int(seq), epoch.decode()

    async def sale_close(self, room: str, sale: str, body: bytes) -> int:
        """The event's seq; refused `no_such_sale`."""
        k = K.room_keys(room)
        seq, _ = await self._script(
            "sale_close", room, [k.sales, k.meta, k.hist],
            [self._pubcmd, k.channel, sale, new_epoch(), self._history_len, body],
        )
        if int(seq) < 0:
            raise refusal(NO_SUCH_SALE)
        return int(seq)

    async def sale_buy(
        self, room: str, sale: str, user: str, qty: int, key: str, order_prefix: str, pay_window_ms: int,
        sold_out_body: bytes,
    ) -> tuple[str, int, bool]:
        """(order id, remaining, first time); a refusal is raised with its code."""
        k = K.room_keys(room)
        idem_field = f"{len(user)}:{user}{key}"
        out = await self._script(
            "sale_buy",
            room,
            [k.sales, k.bought(sale), k.idem(sale), k.orders, k.pending, self.orders_stream(room), k.meta, k.hist],
            [self._pubcmd, k.channel, sale, user, qty, idem_field, order_prefix, pay_window_ms,
             new_epoch(), self._history_len, room, key, sold_out_body],
        )  # fmt: skip
        if out[0] != b"ok":
            raise refusal(out[1].decode())
        return out[1].decode(), int(out[2]), bool(out[3])

    async def order_release(self, room: str, order: str, sale: str, status: str) -> None:
        """Released now; refused `no_such_order`, `closed` (no longer pending) or `not_due`."""
        k = K.room_keys(room)
        out = await self._script(
            "order_release",
            room,
            [k.orders, k.pending, k.sales, k.bought(sale), self.orders_stream(room), k.meta],
            [order, status, self._pubcmd, k.channel],
        )
        if out[0] != b"ok":
            raise refusal(out[1].decode())

    async def order_confirm(self, room: str, order: str) -> None:
        k = K.room_keys(room)
        out = await self._script("order_confirm", room, [k.orders, k.pending, self.orders_stream(room), k.meta], [order])
        if out[0] != b"ok":
            raise refusal(out[1].decode())

    async def order(self, room: str, order: str) -> bytes | None:
        return await self._bounded(self._cmd(room).hget(K.room_keys(room).orders, order))

    async def sales(self, room: str) -> list[SaleRecord]:
        return sale_records(await self._bounded(self._cmd(room).hgetall(K.room_keys(room).sales)))

    async def bought(self, room: str, sale: str) -> dict[bytes, bytes]:
        return await self._bounded(self._cmd(room).hgetall(K.room_keys(room).bought(sale)))

    async def due_orders(self, room: str, now_ms: int, count: int = 500) -> list[str]:
        ids = await self._bounded(
            self._cmd(room).zrangebyscore(K.room_keys(room).pending, "-inf", now_ms, start=0, num=count)
        )
        return [i.decode() for i in ids]

    def registries(self) -> list[Any]:
        """One client per place SALE_ROOMS lives (each standalone shard, or the cluster)."""
        return [self._cluster] if self._cluster is not None else list(self._clients)

    async def sale_rooms(self, registry: Any) -> list[str]:
        return [r.decode() for r in await self._bounded(registry.smembers(K.SALE_ROOMS))]

    async def reaper_lock(self, registry: Any, ttl_ms: int) -> bool:
        return bool(await self._bounded(registry.set(K.REAPER_LOCK, self.hub_id, nx=True, px=ttl_ms)))
