"""Moderation end to end: real Redis, two real hub processes, real sockets. A troll with a
socket on each hub is kicked and banned; the word filter; reports and their resolutions;
mutes up the escalation ladder; host comments under a low per-viewer cap."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Iterator

import aiohttp
import pytest

from liveroom.redis_local import RedisProcess
from tests.conftest import HUB_ENV
from tests.support import Client, HubProcess, t, token


def room() -> str:
    return "mod" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def hubs2(redis1: RedisProcess) -> Iterator[list[HubProcess]]:
    """Two hubs on one shard for the whole module (every test uses rooms of its own)."""
    hs = [HubProcess({"LIVEROOM_REDIS": redis1.url, **HUB_ENV}).start() for _ in range(2)]
    yield hs
    for h in hs:
        h.stop()


def host_token(r: str) -> str:
    return token("host", role="host", rooms=[r])


async def http(method: str, url: str, tok: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, json=body, headers={"Authorization": f"Bearer {tok}"}) as r:
            return r.status, await r.json()


async def refused(base: str, r: str, tok: str) -> tuple[int, dict[str, Any]]:
    """A handshake that is expected to be refused before the upgrade: (status, body)."""
    async with aiohttp.ClientSession() as s:
        try:
            ws = await s.ws_connect(base + "/ws", params={"room": r, "token": tok})
        except aiohttp.WSServerHandshakeError as exc:
            async with s.get(base + "/ws", params={"room": r, "token": tok}) as resp:
                return exc.status, await resp.json()
        await ws.close()
        return 101, {}


def bye(c: Client) -> dict[str, Any] | None:
    return c.last_frame("bye")


async def test_kick_then_ban_on_two_hubs(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    host = await Client.connect(a.base, r, host_token(r))
    viewer = await Client.connect(b.base, r, token("fan"))
    troll = [await Client.connect(h.base, r, token("troll")) for h in hubs2]
    # kicked over the WebSocket by the host on hub a: both of its sockets go, not the fan's
    assert (await host.call("kick", user="troll"))["ok"]
    for c in troll:
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert bye(c) == {"t": "bye", "reason": "kicked", "reconnect": False}
    assert not viewer.closed.is_set()
    # a kick is not a ban: it may come back, on either hub
    troll = [await Client.connect(h.base, r, token("troll")) for h in hubs2]
    # banned for a minute over the HTTP API of hub b
    status, body = await http("POST", f"{b.base}/api/rooms/{r}/bans", host_token(r), {"user": "troll", "seconds": 60})
    assert status == 200, body
    for c in troll:
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert bye(c) == {"t": "bye", "reason": "banned", "reconnect": False}
    for h in hubs2:
        status, body = await refused(h.base, r, token("troll"))
        assert status == 403 and body["error"]["code"] == "banned", (status, body)
    # the ban is the room's: the same user elsewhere, and other users here, are let in
    other = await Client.connect(a.base, room(), token("troll"))
    await other.close()
    # lifted: back in on both hubs
    assert (await host.call("ban", user="troll", seconds=0))["ok"]
    back = [await Client.connect(h.base, r, token("troll")) for h in hubs2]
    assert not viewer.closed.is_set() and not host.closed.is_set()
    for c in [*back, viewer, host]:
        await c.close()


async def test_kick_and_ban_are_host_ops(hubs2: list[HubProcess]) -> None:
    r = room()
    fan = await Client.connect(hubs2[0].base, r, token("fan"))
    reply = await fan.call("kick", user="host")
    assert reply["error"]["code"] == "forbidden"
    reply = await fan.call("ban", user="x", seconds=-2)
    assert reply["error"]["code"] == "bad_field"
    status, body = await http("POST", f"{hubs2[0].base}/api/rooms/{r}/kicks", token("fan"), {"user": "x"})
    assert status == 403
    await fan.close()


async def test_ban_forever_and_expiring(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    host = await Client.connect(a.base, r, host_token(r))
    assert (await host.call("ban", user="gone", seconds=-1))["ok"]
    assert (await host.call("ban", user="brief", seconds=1))["ok"]
    assert (await refused(b.base, r, token("gone")))[0] == 403
    assert (await refused(b.base, r, token("brief")))[0] == 403
    await asyncio.sleep(1.2)
    c = await Client.connect(b.base, r, token("brief"))
    assert (await refused(a.base, r, token("gone")))[0] == 403
    await c.close()
    await host.close()
