"""Real Redis processes (standalone shards and a 3-master cluster) on free loopback ports,
and real hub processes. Nothing here touches the Redis on 6379."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from liveroom.redis_local import RedisClusterProcesses, RedisProcess, bundled_available, find_server
from tests.support import HubProcess


def _binaries() -> list[str]:
    kinds = []
    try:
        find_server("system")
        kinds.append("system")
    except FileNotFoundError:
        pass
    if bundled_available():
        kinds.append("bundled")
    return kinds


BINARIES = _binaries()
DEFAULT_BINARY = BINARIES[0] if BINARIES else "system"


@pytest.fixture(scope="session", params=BINARIES)
def binary_kind(request: pytest.FixtureRequest) -> str:
    """Debian's redis-server and the bundled Valkey: the two servers a user may run."""
    return str(request.param)


@pytest.fixture(scope="session")
def shards2(binary_kind: str) -> Iterator[list[RedisProcess]]:
    """Two standalone Redis shards of the kind under test."""
    procs = [RedisProcess(find_server(binary_kind)).start() for _ in range(2)]
    yield procs
    for p in procs:
        p.stop()


@pytest.fixture(scope="session")
def redis1() -> Iterator[RedisProcess]:
    """One standalone Redis (the default binary) for tests that are not about topology."""
    p = RedisProcess(find_server(DEFAULT_BINARY)).start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def cluster3() -> Iterator[RedisClusterProcesses]:
    c = RedisClusterProcesses(find_server(DEFAULT_BINARY), masters=3).start()
    yield c
    c.stop()


@pytest.fixture
def start_hub() -> Iterator[Callable[..., HubProcess]]:
    """Start hub processes with the given environment; all stopped after the test."""
    hubs: list[HubProcess] = []

    def start(**env: str) -> HubProcess:
        env = {k: str(v) for k, v in env.items()}
        h = HubProcess(env).start()
        hubs.append(h)
        return h

    yield start
    for h in hubs:
        h.stop()


@pytest.fixture
def hub(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> HubProcess:
    """One hub on one shard, caps off so that tests see every comment."""
    return start_hub(
        LIVEROOM_REDIS=redis1.url,
        LIVEROOM_VIEWER_COMMENT_CAP="0",
        LIVEROOM_COMMENT_RATE="0",
        LIVEROOM_FRAME_RATE="0",
        LIVEROOM_ANONYMOUS="1",
    )
