"""Real Redis processes (standalone shards and a 3-master cluster) on free loopback ports,
and real hub processes. Nothing here touches the Redis on 6379."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterator

import pytest

from liveroom.redis_local import RedisClusterProcesses, RedisProcess, bundled_available, find_server
from tests.support import AppHub, HubProcess, start_app_hub


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


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisProcess]:
    """A Redis of the module's own (not the session's redis1): its key and command counts
    are the module's, and no hub of another test claims its draws or orders meanwhile."""
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


# the `hub` settings: caps off so that tests see every comment, anonymous viewers allowed
HUB_ENV = {
    "LIVEROOM_VIEWER_COMMENT_CAP": "0",
    "LIVEROOM_COMMENT_RATE": "0",
    "LIVEROOM_FRAME_RATE": "0",
    "LIVEROOM_ANONYMOUS": "1",
    "LIVEROOM_MAX_ANON_PER_IP": "0",  # every test's sockets come from 127.0.0.1
    "LIVEROOM_MAX_ANON_ROOMS_PER_IP": "0",
}


@pytest.fixture
def hub(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> HubProcess:
    """One hub on one shard, caps off so that tests see every comment: a fresh process per
    test (see `shared_hub` for the cheaper one)."""
    return start_hub(LIVEROOM_REDIS=redis1.url, **HUB_ENV)


@pytest.fixture(scope="module")
def shared_hub(redis1: RedisProcess) -> Iterator[HubProcess]:
    """The `hub` settings in one process for the whole module: for tests that use rooms of
    their own and read no hub-wide state (metrics, connection counts, the whole log: take
    `since=len(shared_hub.log())` first), so that they need no fresh process each."""
    h = HubProcess({"LIVEROOM_REDIS": redis1.url, **HUB_ENV}).start()
    yield h
    h.stop()


@pytest.fixture
async def app_hub(aiohttp_client: Callable[..., Awaitable[Any]], redis1: RedisProcess) -> Callable[..., Awaitable[AppHub]]:
    """Start in-process hubs (build_app under pytest-aiohttp) on redis1, with the `hub`
    settings plus the given LIVEROOM_* overrides; stopped after the test. For tests about
    one hub's HTTP side, refusals, or a config of their own, with no signal or restart."""

    async def start(**env: str) -> AppHub:
        return await start_app_hub(aiohttp_client, redis1.url, **{**HUB_ENV, **env})

    return start

@pytest.fixture(scope="module")
def hubs2(redis1: RedisProcess) -> Iterator[list[HubProcess]]:
    """Two hubs on one shard for the whole module (every test uses rooms of its own)."""
    hs = [HubProcess({"LIVEROOM_REDIS": redis1.url, **HUB_ENV}).start() for _ in range(2)]
    yield hs
    for h in hs:
        h.stop()
