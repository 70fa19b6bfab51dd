"""Auto-pipelining: the commands a hub sends one shard within one event-loop iteration go
out as one write, and their replies are read back in order on the same connection.

Why: when thousands of buyers tap `buy` in the same second, one EVALSHA round trip each
through redis-py's per-command path (pool checkout, a timeout context, packing, a drain,
a read) cost the hub more CPU than the script costs Redis, and under that load calls
queued long enough to time out. Here a burst is a handful of writes; the timeout is one
per batch, and a caller that gives up never leaves an unread reply on a pooled connection.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hiredis import pack_command as _pack_command
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from liveroom.errors import Unavailable

MAX_BATCH = 256  # commands per write: a few ms of script time on the shard
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP, by hiredis (a C packer, installed with redis[hiredis]): 2.9-3.1x
    as fast as the hand-written Python packer it replaced on the hub's real EVALSHA argument
    lists (bench/pack_bench.py, bench/RESULTS.md), and the same bytes. redis-py's general
    pack_command was a fifth of the hub's time in the flash sale profile. Arguments are str,
    bytes, int or float; anything else is TypeError, a str that is not valid UTF-8 is
    UnicodeEncodeError (the caller's alone: see AutoPipeline._run)."""
    packed: bytes = _pack_command(args)
    return packed


ROLE_EVERY_S = 5.0  # how often a pipeline re-checks whether its shard has replicas to WAIT for

Queued = tuple[tuple[Any, ...], asyncio.Future[Any], int, int]  # args, reply, replicas, wait ms


def replicas_of(role: Any) -> int:
    """Connected replicas from a ROLE reply (a replica or sentinel answers 0)."""
    if isinstance(role, list) and len(role) >= 3 and role[0] in (b"master", "master") and isinstance(role[2], list):
        return len(role[2])
    return 0


class AutoPipeline:
    """One shard's command queue, flushed once per loop iteration."""

    def __init__(self, pool: ConnectionPool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self._queue: list[Queued] = []
        self._batches: set[asyncio.Task[None]] = set()
        self._replicas = 0  # the shard's connected replicas, as ROLE last said
        self._role_at = -math.inf
        self.waits = 0  # WAITs sent, and those that timed out short of their replicas
        self.waits_short = 0

    @property
    def pool(self) -> ConnectionPool:
        return self._pool

    def call(self, *args: Any, replicas: int = 0, wait_ms: int = 0) -> asyncio.Future[Any]:
        """The reply to one command; `Unavailable` if the shard does not answer in time.
        `replicas` > 0: the reply is held until that many replicas have the write (one
        `WAIT replicas wait_ms` on the same connection after the batch, shared by every
        such command in it), or until wait_ms passes; skipped if the shard has no replica."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((args, fut, replicas, wait_ms))
        return fut

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for i in range(0, len(queue), MAX_BATCH):
            task = asyncio.create_task(self._run(queue[i : i + MAX_BATCH]))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run(self, batch: list[Queued]) -> None:
        conn = None
        try:
            # Each command packed on its own: one that cannot be encoded (a bug, or input
            # that escaped the checks at the edge) fails alone, never its batch-mates.
            packed: list[bytes] = []
            sent: list[tuple[asyncio.Future[Any], int, int]] = []
            for args, fut, replicas, wait_ms in batch:
                try:
                    packed.append(pack(args))
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
                else:
                    sent.append((fut, replicas, wait_ms))
            if not sent:
                return
            held: list[tuple[asyncio.Future[Any], Any]] = []  # replies waiting for replicas
            replicas = wait_ms = 0
            async with asyncio.timeout(self._timeout):
                conn = await self._pool.get_connection()
                await conn.send_packed_command(b"".join(packed), check_health=False)
                for fut, want, ms in sent:
                    try:
                        # math.inf: no per-read timeout context; the batch's covers them all
                        reply = await conn.read_response(timeout=math.inf)
                    except ResponseError as exc:  # one command's error; the rest still come
                        if not fut.done():
                            fut.set_exception(exc)
                    else:
                        if want > 0:
                            held.append((fut, reply))
                            replicas, wait_ms = max(replicas, want), max(wait_ms, ms)
                        elif not fut.done():
                            fut.set_result(reply)
                if held:
                    await self._wait_replicas(conn, replicas, wait_ms)
                    for fut, reply in held:
                        if not fut.done():
                            fut.set_result(reply)
        except BaseException as exc:
            if conn is not None:
                await conn.disconnect(nowait=True)  # replies may be left unread on it
            for _, fut, _, _ in batch:
                if not fut.done():
                    if isinstance(exc, _UNREACHABLE):
                        fut.set_exception(Unavailable(f"Redis did not answer ({type(exc).__name__})"))
                    elif isinstance(exc, Exception):
                        fut.set_exception(exc)
                    else:
                        fut.cancel()
            if not isinstance(exc, Exception):
                raise
        finally:
            if conn is not None:
                await self._pool.release(conn)

    async def _wait_replicas(self, conn: Any, replicas: int, wait_ms: int) -> None:
        """WAIT on the connection that wrote (WAIT counts that connection's writes). Its
        answer is not checked: past wait_ms the write is answered anyway (it is done on the
        master; only a failover within that window can lose it). A shard without replicas
        is not waited on (WAIT would sit out its whole timeout); ROLE says, every few s."""
        now = asyncio.get_running_loop().time()
        if now - self._role_at >= ROLE_EVERY_S:
            await conn.send_packed_command(pack(("ROLE",)), check_health=False)
            self._replicas = replicas_of(await conn.read_response(timeout=math.inf))
            self._role_at = now
        if self._replicas <= 0:
            return
        want = min(replicas, self._replicas)
        await conn.send_packed_command(pack(("WAIT", want, wait_ms)), check_health=False)
        got = await conn.read_response(timeout=math.inf)
        self.waits += 1
        if isinstance(got, int) and got < want:
            self.waits_short += 1

    async def close(self) -> None:
        for task in list(self._batches):
            task.cancel()
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
