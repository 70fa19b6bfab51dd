"""A phone that stops reading never slows the room: it is cut off, the others get everything."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from typing import Callable

import aiohttp

from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, t, token


def stalled_viewer(port: int, room: str, tok: str) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that never reads after the upgrade."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws?room={room}&token={tok} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return s


async def metric(base: str, name: str) -> float:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/metrics") as r:
            text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_stalled_viewer_is_cut_off_and_the_room_goes_on(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    """Notices flood a room; the viewer who never reads gets `bye slow`, the others all 300."""
    h = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_OUTBOX_BYTES="4096", LIVEROOM_FRAME_RATE="0")
    room = "slow" + uuid.uuid4().hex[:8]
    host = await Client.connect(h.base, room, token("h", role="host", rooms=[room]))
    good = await Client.connect(h.base, room, token("good"))
    stalled = stalled_viewer(h.port, room, token("stalled"))
    try:
        text = "x" * 1900
        for i in range(300):
            r = await host.call("notice", text=f"{i} {text}")
            assert r["ok"]
        await good.wait_for(lambda: len(good.of_type("notice")) == 300, timeout=20, what="300 notices")
        assert [int(e["text"].split()[0]) for e in good.of_type("notice")] == list(range(300))
        deadline = asyncio.get_running_loop().time() + t(10)
        while await metric(h.base, 'liveroom_byes_total{reason="slow"}') < 1:
            assert asyncio.get_running_loop().time() < deadline, "the stalled viewer was never cut off"
            await asyncio.sleep(0.2)
        # what the stalled phone finally reads ends in a close: it was disconnected
        stalled.settimeout(t(5))
        data = b""
        while True:
            chunk = stalled.recv(65536)
            if not chunk:
                break
            data += chunk
        assert len(data) < 300 * 1900  # it was not sent the whole flood
    finally:
        stalled.close()
        await host.close()
        await good.close()
