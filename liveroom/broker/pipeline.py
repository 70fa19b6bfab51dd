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


class AutoPipeline:
    """One shard's command queue, flushed once per loop iteration."""

    def __init__(self, pool: ConnectionPool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._batches: set[asyncio.Task[None]] = set()

    @property
    def pool(self) -> ConnectionPool:
        return self._pool

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """The reply to one command; `Unavailable` if the shard does not answer in time."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((args, fut))
        return fut

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for i in range(0, len(queue), MAX_BATCH):
            task = asyncio.create_task(self._run(queue[i : i + MAX_BATCH]))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        conn = None
        try:
            # Each command packed on its own: one that cannot be encoded (a bug, or input
            # that escaped the checks at the edge) fails alone, never its batch-mates.
            packed: list[bytes] = []
            sent: list[asyncio.Future[Any]] = []
            for args, fut in batch:
                try:
                    packed.append(pack(args))
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
                else:
                    sent.append(fut)
            if not sent:
                return
            async with asyncio.timeout(self._timeout):
                conn = await self._pool.get_connection()
                await conn.send_packed_command(b"".join(packed), check_health=False)
                for fut in sent:
                    try:
                        # math.inf: no per-read timeout context; the batch's covers them all
                        reply = await conn.read_response(timeout=math.inf)
                    except ResponseError as exc:  # one command's error; the rest still come
                        if not fut.done():
                            fut.set_exception(exc)
                    else:
                        if not fut.done():
                            fut.set_result(reply)
        except BaseException as exc:
            if conn is not None:
                await conn.disconnect(nowait=True)  # replies may be left unread on it
            for _, fut in batch:
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

    async def close(self) -> None:
        for task in list(self._batches):
            task.cancel()
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
