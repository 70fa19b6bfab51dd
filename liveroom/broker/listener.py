"""One pub/sub connection to one Redis node, read continuously by one task.

The reader only parses and hands each message to a plain callback, which appends to an
in-memory list: it never waits on a WebSocket. Redis disconnects a subscriber whose output
buffer overflows, so a listener that stalls behind slow clients would silently lose rooms.
After a reconnect redis-py subscribes the channels again; a gap in a room's seq is repaired
from the room's history by the hub. A listener that cannot reconnect says so (`on_unreachable`):
on a cluster its node may be dead for good, its slots served by a promoted replica, and the
broker moves its rooms there.

A socket can also go half-open: the connection looks up, nothing arrives (a NAT or a
firewall forgot it, a peer vanished without a FIN). redis-py's health check sends PING
but does not wait for the answer, so it would never notice. So the listener checks
liveness itself: every `probe_interval` it PUBLISHes a probe to a channel only it
subscribes (over a separate connection); if no probe has come back for `probe_timeout`,
it drops the pub/sub connection, connects again and resubscribes, and the hub repairs its
rooms from history (`on_reconnect`), as after any reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes, bytes], None]  # (channel, data)


class ShardListener:
    def __init__(
        self, client: aioredis.Redis, on_message: MessageHandler, *, sharded: bool, name: str, probe: str = "",
        probe_interval: float = 1.0, probe_timeout: float = 3.0,
    ) -> None:  # fmt: skip
        """`probe`: this listener's own probe channel ("" no liveness probe)."""
        self._client = client
        self._pubsub = client.pubsub()
        self._on_message = on_message
        self._sharded = sharded
        self.name = name
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        # redis-py's PubSub opens its connection lazily in the first (S)SUBSCRIBE, and each
        # of several concurrent first calls would take a pool connection of its own (only
        # the last is read): commands to the connection go one at a time
        self._sending = asyncio.Lock()
        self._active = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0
        self.on_reconnect: Callable[[], None] | None = None
        # channels we asked for; one the server drops unasked has moved to another node
        self._wanted: set[bytes] = set()
        self.on_moved: Callable[[bytes], None] | None = None
        self.on_unreachable: Callable[[], None] | None = None
        # liveness: a probe published to `probe` must come back on this connection
        self._probe = probe
        self._probe_key = probe.encode()
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._echo_at = time.monotonic()  # the last probe back (or the last (re)connect)
        self._stale = False  # no probe back in time: _run drops the connection
        self._prober: asyncio.Task[None] | None = None
        self.probes_missed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listener:{self.name}")
        if self._probe and self._probe_interval > 0:
            self._prober = asyncio.create_task(self._probe_loop(), name=f"probe:{self.name}")

    async def subscribe(self, channel: str, timeout: float) -> None:
        """Subscribe and wait for Redis to confirm, so no message after this is missed."""
        key = channel.encode()
        fut = self._waiting.get(key)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._waiting[key] = fut
        self._wanted.add(key)
        async with self._sending:
            if self._probe and self._probe_key not in self._pubsub.channels:
                # a plain channel, also on a cluster node: PUBLISH to that node reaches it
                await self._pubsub.subscribe(self._probe)
                self._echo_at = time.monotonic()
            if self._sharded:
                await self._pubsub.ssubscribe(channel)
            else:
                await self._pubsub.subscribe(channel)
        self._active.set()
        await asyncio.wait_for(asyncio.shield(fut), timeout)

    def forget(self, channel: str) -> None:
        """Drop a channel without telling the server (it has moved to another node, and this
        one may be dead): redis-py must not subscribe it here again after a reconnect."""
        key = channel.encode()
        self._waiting.pop(key, None)
        self._wanted.discard(key)
        self._pubsub.shard_channels.pop(key, None)
        self._pubsub.channels.pop(key, None)

    @property
    def channels(self) -> int:
        return len(self._wanted)

    async def unsubscribe(self, channel: str) -> None:
        self._waiting.pop(channel.encode(), None)
        self._wanted.discard(channel.encode())
        async with self._sending:
            if self._sharded:
                await self._pubsub.sunsubscribe(channel)
            else:
                await self._pubsub.unsubscribe(channel)

    async def _probe_loop(self) -> None:
        """Publish a probe every probe_interval while rooms are listened to; flag the
        connection stale when none has come back for probe_timeout."""
        sent = 0
        while not self._closed:
            await asyncio.sleep(self._probe_interval)
            if not self._wanted or self._probe_key not in self._pubsub.channels:
                self._echo_at = time.monotonic()  # nothing to watch yet: the clock starts now
                continue
            if time.monotonic() - self._echo_at > self._probe_timeout and not self._stale:
                self.probes_missed += 1
                log.warning(
                    "pub/sub %s: no probe back for %.1f s; dropping the connection", self.name, self._probe_timeout
                )
                self._stale = True
                continue
            sent += 1
            try:  # over a pooled connection, not the one being checked
                await asyncio.wait_for(self._client.publish(self._probe, str(sent)), self._probe_interval)
            except (RedisError, OSError, asyncio.TimeoutError):
                pass  # unreachable: the missing echo says so

    async def _run(self) -> None:
        failures = 0  # reconnects failed in a row
        while not self._closed:
            if not self._pubsub.subscribed:
                self._active.clear()
                await self._active.wait()
                continue
            try:
                if self._stale:
                    self._stale = False
                    conn = self._pubsub.connection
                    if conn is not None:
                        await conn.disconnect(nowait=True)
                    raise RedisConnectionError("pub/sub probe not echoed in time")
                msg = await self._pubsub.get_message(timeout=1.0)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self._closed:
                    return
                self.reconnects += 1
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("pub/sub %s lost (%s); reconnecting (attempt %d)", self.name, exc, failures)
                await asyncio.sleep(0.5)
                conn = self._pubsub.connection
                if conn is None:
                    continue
                try:
                    await conn.connect()
                except (RedisError, OSError):
                    if self.on_unreachable is not None:
                        self.on_unreachable()
                    continue
                failures = 0
                self._echo_at = time.monotonic()
                if self.on_reconnect is not None:
                    self.on_reconnect()
                continue
            except RedisError as exc:  # a protocol surprise: log it and keep reading
                log.error("pub/sub %s: %r", self.name, exc)
                continue
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message" and msg["channel"] == self._probe_key:
                self._echo_at = time.monotonic()  # the connection is alive
            elif kind in ("message", "smessage"):
                try:
                    self._on_message(msg["channel"], msg["data"])
                except Exception:  # one bad message must not stop the room's other events
                    log.exception("pub/sub %s: handler failed", self.name)
            elif kind in ("subscribe", "ssubscribe"):
                fut = self._waiting.pop(msg["channel"], None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == "sunsubscribe" and msg["channel"] in self._wanted:
                # Redis drops a shard channel's subscribers when its slot moves to another
                # node (resharding, failover): forget it here (redis-py would resubscribe it
                # on this node after a reconnect) and let the broker follow it
                channel = msg["channel"]
                self._wanted.discard(channel)
                self._pubsub.shard_channels.pop(channel, None)
                log.warning("pub/sub %s: %s moved to another node", self.name, channel.decode(errors="replace"))
                if self.on_moved is not None:
                    self.on_moved(channel)

    async def close(self) -> None:
        self._closed = True
        self._active.set()
        if self._prober is not None:
            self._prober.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await self._pubsub.aclose()
        except (RedisError, OSError):
            pass
