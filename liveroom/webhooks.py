"""Order webhooks: every entry of the orders streams (created, confirmed, cancelled,
expired) POSTed as signed JSON to the shop's URL, at least once (docs/shop.md).

Each standalone shard's `lr:orders` (on a Redis Cluster: each room's own orders stream,
found by SCAN) is read through one consumer group (`webhooks.group`); every process that delivers (each hub, or `liveroom webhooks`) is one
consumer in it. An entry is XACKed only after a 2xx answer, so nothing read and not
delivered is lost when a process dies: its entries stay pending and, once nobody has
touched them for `claim_idle_s`, another consumer takes them over (XAUTOCLAIM).

Per stream, at most `concurrency` deliveries are in flight; each retries with an
exponential, capped, jittered delay, `attempts` times in a row, then leaves its slot and the
entry pending, to be claimed again after `claim_idle_s` (by any consumer): a failing entry
never holds the stream, it is retried for ever at that pace until the receiver takes it.

Knows nothing of WebSockets, rooms or the hub: a Redis URL per shard and a config.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
import socket
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from liveroom.broker import keys as K
from liveroom.broker.scripts import source
from liveroom.broker.topology import cluster_client
from liveroom.config import Config, WebhooksConfig

log = logging.getLogger(__name__)

SIGNATURE = "X-Liveroom-Signature"
TIMESTAMP = "X-Liveroom-Timestamp"
DELIVERY = "X-Liveroom-Delivery"
EVENT = "X-Liveroom-Event"
ATTEMPT = "X-Liveroom-Attempt"
BLOCK_MS = 1000  # one XREADGROUP waits at most this long for new entries
FORGET_EVERY_S = 60.0
ROOM_POLL_S = 0.5  # a cluster room's stream with nothing new is read again this much later
DISCOVER_S = 5.0  # how often a cluster deliverer looks for rooms' orders streams  # how often consumers of processes long gone are removed from the group
_INTS = ("qty", "amount", "ts")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Liveroom-Signature value: HMAC-SHA256 of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, max_age_s: float = 300, now: float | None = None) -> bool:
    """What a receiver does (docs/shop.md): the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff(attempt: int, base: float, cap: float, rnd: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1, 2, ...): base * 2^(attempt-1), at most
    `cap`, then a random half to all of it (jitter: retries of many entries spread out)."""
    delay: float = min(cap, base * 2 ** min(attempt - 1, 30))
    jitter: float = (rnd or random).uniform(0.5, 1.0)
    return delay * jitter


def payload(stream: str, entry_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The JSON body of one orders-stream entry."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        key, value = k.decode(errors="replace"), v.decode(errors="replace")
        out[key] = int(value) if key in _INTS and value.lstrip("-").isdigit() else value
    out["id"] = dedup_key(out)
    out["stream"] = stream
    out["entry"] = entry_id
    return out


def dedup_key(p: dict[str, Any]) -> str:
    """`<order>:<event>`: one order has each event at most once, whichever its entry."""
    return f"{p.get('order', '')}:{p.get('event', '')}"


class StreamWorker:
    """One consumer on one orders stream."""

    def __init__(
        self, cfg: WebhooksConfig, r: Any, stream: str, consumer: str, http: aiohttp.ClientSession, room_stream: bool = False
    ) -> None:
        # room_stream: one room's stream on a cluster, found by SCAN. Its group starts at the
        # stream's first entry (it may hold orders from before it was found), reads do not
        # block (a blocked read holds a connection, and there is one worker per room), and
        # the worker ends when the stream is gone (the room expired): never recreated here.
        self.room_stream = room_stream
        self.cfg = cfg
        self.r = r
        self.stream = stream
        self.consumer = consumer
        self.http = http
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self._freed = asyncio.Event()
        self.delivered = 0
        self._forget = r.register_script(source("webhook_forget"))
        self._forgot_at = 0.0

    async def ensure_group(self) -> bool:
        """Create the group if need be; False if this room's stream is gone."""
        try:
            if self.room_stream:
                await self.r.xgroup_create(self.stream, self.cfg.group, id="0")
            else:
                # `$`: events from the first start of webhooks on; the stream is created if need be
                await self.r.xgroup_create(self.stream, self.cfg.group, id="$", mkstream=True)
            log.info("webhooks: created group %s on %s", self.cfg.group, self.stream)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return True
            if self.room_stream and "requires the key to exist" in str(exc):
                return False
            raise
        return True

    async def run(self) -> None:
        claim_every = max(min(self.cfg.claim_idle_s / 2, 5.0), 0.1)
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        ready = False
        try:
            while True:
                try:
                    if not ready:
                        if not await self.ensure_group():
                            log.info("webhooks: %s is gone: its worker ends", self.stream)
                            return
                        ready = True
                    while len(self.inflight) >= self.cfg.concurrency:
                        self._freed.clear()
                        await self._freed.wait()
                    if loop.time() >= next_claim:
                        await self.claim()
                        next_claim = loop.time() + claim_every
                    free = self.cfg.concurrency - len(self.inflight)
                    if free <= 0:
                        continue
                    block: int | None = int(min(BLOCK_MS, max(next_claim - loop.time(), 0.01) * 1000)) or 1
                    if self.room_stream:
                        block = None
                    got: Any = await self.r.xreadgroup(self.cfg.group, self.consumer, {self.stream: ">"}, count=free, block=block)
                    for _stream, entries in got or []:
                        for entry_id, fields in entries:
                            self._spawn(entry_id, fields)
                    if self.room_stream and not any(entries for _s, entries in got or []):
                        await asyncio.sleep(ROOM_POLL_S)
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError) as exc:
                    if "NOGROUP" in str(exc):
                        ready = False  # the stream or group went away (a Redis without persistence restarted)
                    log.warning("webhooks: %s: %s", self.stream, exc)
                    await asyncio.sleep(1.0)
                except Exception:  # never let one surprise stop the deliveries for good
                    log.exception("webhooks: %s", self.stream)
                    await asyncio.sleep(1.0)
        finally:
            tasks = list(self.inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def claim(self) -> None:
        """Take over entries nobody has touched for claim_idle_s: those of a dead consumer,
        and our own that ran out of attempts."""
        start: Any = "0-0"
        idle_ms = int(self.cfg.claim_idle_s * 1000)
        while len(self.inflight) < self.cfg.concurrency:
            res = await self.r.xautoclaim(
                self.stream, self.cfg.group, self.consumer, idle_ms, start_id=start, count=self.cfg.concurrency - len(self.inflight)
            )
            for entry_id, fields in res[1]:
                if fields is not None:  # None: trimmed away meanwhile
                    self._spawn(entry_id, fields)
            start = res[0]
            if start in (b"0-0", "0-0"):
                break
        now = asyncio.get_running_loop().time()
        if now - self._forgot_at >= FORGET_EVERY_S:
            self._forgot_at = now
            await self.forget_gone()

    async def forget_gone(self, min_idle_ms: int | None = None) -> int:
        """Remove consumers with nothing pending and idle 10 x claim_idle_s (at least 10
        minutes): one is left behind by every hub that stops; a live one that is removed is
        created again by its next read."""
        if min_idle_ms is None:
            min_idle_ms = int(max(10 * self.cfg.claim_idle_s, 600) * 1000)
        gone = int(await self._forget(keys=[self.stream], args=[self.cfg.group, min_idle_ms, self.consumer]))
        if gone:
            log.info("webhooks: %s: forgot %d consumer(s) of stopped processes", self.stream, gone)
        return gone

    def _spawn(self, entry_id: bytes | str, fields: dict[bytes, bytes]) -> None:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        if eid in self.inflight:
            return
        self.inflight[eid] = asyncio.create_task(self._deliver(eid, fields), name=f"webhook {eid}")

    async def _deliver(self, eid: str, fields: dict[bytes, bytes]) -> None:
        try:
            p = payload(self.stream, eid, fields)
            body = json.dumps(p, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
            for attempt in range(1, self.cfg.attempts + 1):
                if attempt > 1:
                    await asyncio.sleep(backoff(attempt - 1, self.cfg.retry_base_s, self.cfg.retry_max_s))
                    # reset its idle time: still being worked on, not for XAUTOCLAIM elsewhere
                    await self.r.xclaim(self.stream, self.cfg.group, self.consumer, 0, [eid], justid=True)
                if await self._post(body, p, attempt):
                    await self.r.xack(self.stream, self.cfg.group, eid)
                    self.delivered += 1
                    return
            log.warning(
                "webhooks: %s %s not delivered after %d attempts: left pending, retried after %.0f s",
                p["id"], eid, self.cfg.attempts, self.cfg.claim_idle_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks: delivery of %s failed", eid)  # stays pending: claimed again later
        finally:
            self.inflight.pop(eid, None)
            self._freed.set()

    async def _post(self, body: bytes, p: dict[str, Any], attempt: int) -> bool:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "liveroom-webhooks",
            EVENT: str(p.get("event", "")),
            DELIVERY: p["id"],
            TIMESTAMP: ts,
            SIGNATURE: sign(self.cfg.secret, ts, body),
            ATTEMPT: str(attempt),
        }
        try:
            # the answer's body is not read: only its status counts (a redirect is a failure)
            async with self.http.post(self.cfg.url, data=body, headers=headers, allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return True
                why = f"answered {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            why = type(exc).__name__
        # the first failure of an entry at INFO, its retries at DEBUG, giving up at WARNING
        log.log(logging.INFO if attempt == 1 else logging.DEBUG, "webhooks: %s %s (attempt %d)", p["id"], why, attempt)
        return False


class Webhooks:
    """A consumer on each standalone shard's orders stream, or, on a Redis Cluster, on each
    room's orders stream, until stopped."""

    def __init__(
        self, cfg: WebhooksConfig, urls: tuple[str, ...], consumer: str, redis_timeout_s: float = 1.0, cluster: tuple[str, ...] = ()
    ) -> None:
        self.cfg = cfg
        self.urls = urls
        self.cluster = cluster
        self.consumer = consumer
        self._redis_timeout = redis_timeout_s
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        if self.cluster:
            await self.run_cluster()
        else:
            await self.run_shards()

    async def run_cluster(self) -> None:
        """Every DISCOVER_S, SCAN the masters for rooms' orders streams and start a worker
        on each new one; a worker ends when its room's stream expires."""
        client = cluster_client(self.cluster, self._redis_timeout)
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        tasks: dict[str, asyncio.Task[None]] = {}
        log.info("webhooks: delivering the rooms' orders streams of a cluster to %s as %s", self.cfg.url, self.consumer)
        try:
            while True:
                try:
                    async for key in client.scan_iter(match=K.ROOM_ORDERS_STREAMS, count=1000, _type="stream"):
                        stream = key.decode() if isinstance(key, bytes) else str(key)
                        task = tasks.get(stream)
                        if task is None or task.done():
                            w = StreamWorker(self.cfg, client, stream, self.consumer, http, room_stream=True)
                            tasks[stream] = asyncio.create_task(w.run(), name=f"webhooks {stream}")
                except (RedisError, OSError) as exc:
                    log.warning("webhooks: looking for orders streams: %s", exc)
                for stream in [s for s, task in tasks.items() if task.done()]:
                    del tasks[stream]
                await asyncio.sleep(DISCOVER_S)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            await http.close()
            await client.aclose()

    async def run_shards(self) -> None:
        # clients of our own: XREADGROUP BLOCK outlives the broker's short socket timeout
        sock_timeout = BLOCK_MS / 1000 + self._redis_timeout + 1
        clients = [aioredis.Redis.from_url(u, socket_timeout=sock_timeout, socket_connect_timeout=self._redis_timeout) for u in self.urls]
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        workers = [StreamWorker(self.cfg, c, K.SHARD_ORDERS_STREAM, self.consumer, http) for c in clients]
        log.info("webhooks: delivering %s of %d shard(s) to %s as %s", K.SHARD_ORDERS_STREAM, len(clients), self.cfg.url, self.consumer)
        try:
            await asyncio.gather(*(w.run() for w in workers))
        finally:
            await http.close()
            for c in clients:
                await c.aclose()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="webhooks")

    async def stop(self) -> None:
        """Deliveries in flight are dropped unacknowledged: pending, taken over later."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("webhooks stopped with an error")


def for_hub(cfg: Config, hub_id: str) -> Webhooks | None:
    """The hub's deliverer, or None: webhooks off, or left to `liveroom webhooks`."""
    if not cfg.webhooks.url or not cfg.webhooks.in_hubs:
        return None
    return for_config(cfg, hub_id)


def for_config(cfg: Config, consumer: str) -> Webhooks:
    return Webhooks(cfg.webhooks, cfg.redis.urls, consumer, cfg.redis.timeout_ms / 1000, cluster=cfg.redis.cluster)


def consumer_name() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-webhooks"
