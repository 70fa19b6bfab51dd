"""Client strings are checked at the edge: one bad value is refused alone (`bad_field`) and
never fails other users' ops batched with it on the way to Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Callable

import pytest

from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, t, token


def room() -> str:
    return "edge" + uuid.uuid4().hex[:8]


async def test_pipeline_command_that_cannot_be_packed_fails_alone(redis1: RedisProcess) -> None:
    """Commands batched with one that cannot be encoded are still sent and answered."""
    from redis.asyncio.connection import ConnectionPool

    from liveroom.broker.pipeline import AutoPipeline

    pool = ConnectionPool.from_url(redis1.url)
    pipe = AutoPipeline(pool, timeout_s=t(5))
    try:
        futs = [
            pipe.call("SET", "edge:a", "1"),
            pipe.call("SET", "edge:b", "\ud800"),
            pipe.call("SET", "edge:c", object()),
            pipe.call("GET", "edge:a"),
        ]
        res = await asyncio.gather(*futs, return_exceptions=True)
        assert res[0] is True or res[0] == b"OK", res
        assert isinstance(res[1], UnicodeEncodeError), res
        assert isinstance(res[2], TypeError), res
        assert res[3] == b"1", res
        # all of them bad: nothing is sent, each gets its own exception
        bad = await asyncio.gather(pipe.call("GET", "\udc80"), return_exceptions=True)
        assert isinstance(bad[0], UnicodeEncodeError)
    finally:
        await pipe.close()
        await pool.disconnect()
