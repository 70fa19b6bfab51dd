"""A phone that stops reading never slows the room: it is cut off, the others get everything."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any, Callable

import aiohttp
import msgpack

from liveroom.redis_local import RedisProcess
from tests.support import Client, HubProcess, server_frames, stalled_viewer, t, token


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


def read_frames(s: socket.socket, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Server frames (unmasked, uncompressed, msgpack) from a raw socket until `until`."""
    buf = b""
    out: list[dict[str, Any]] = []
    while True:
        frames, buf = server_frames(buf)
        for opcode, payload in frames:
            if opcode == 0x2:
                f = msgpack.unpackb(payload)
                out.append(f)
                if until(f):
                    return out
        chunk = s.recv(65536)
        assert chunk, "closed"
        buf += chunk


async def test_comments_skipped_for_a_slow_connection_are_counted(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    """A viewer that stops reading for a while misses comments, but every one of them is
    either received or counted in a batch's `dropped` once it reads again."""
    h = start_hub(
        LIVEROOM_REDIS=redis1.url, LIVEROOM_OUTBOX_BYTES="4096", LIVEROOM_FRAME_RATE="0",
        LIVEROOM_COMMENT_RATE="0", LIVEROOM_VIEWER_COMMENT_CAP="0",
    )
    room = "drop" + uuid.uuid4().hex[:8]
    host = await Client.connect(h.base, room, token("h", role="host", rooms=[room]))
    talker = await Client.connect(h.base, room, token("talker"))
    lagging = stalled_viewer(h.port, room, token("lagging"))
    try:
        sent = skipping = 0
        seqs: list[int] = []
        # a few comments a tick (a frame far below 4 x outbox_bytes: skipped, never cut
        # off) until the socket's buffers are full and frames are being skipped, then more
        while skipping < 30:
            for j in range(3):
                got = await talker.call("comment", text=f"{sent} " + "y" * 190)
                assert got["ok"], got
                seqs.append(got["seq"])
                sent += 1
            await asyncio.sleep(0.02)
            if skipping or (sent % 60 == 0 and await metric(h.base, "liveroom_slow_skips_total") > 0):
                skipping += 1
            assert sent < 5000, "the socket never counted as slow"
        assert (await host.call("notice", text="end"))["ok"]
        lagging.settimeout(t(10))
        frames = read_frames(lagging, lambda f: any(e.get("text") == "end" for e in f.get("events", [])))
        assert frames[0]["t"] == "welcome", frames[0]
        # the join completes after the upgrade: the first comments may come before the
        # welcome's seq (its state covers them, they are not owed)
        owed = sum(1 for s in seqs if s > frames[0]["seq"])
        batches = [f for f in frames if f["t"] == "batch"]
        got = sum(1 for f in batches for e in f["events"] if e["type"] == "comment")
        dropped = sum(f.get("dropped", 0) for f in batches)
        assert got < owed and got + dropped == owed, (got, dropped, owed, sent)
    finally:
        lagging.close()
        await host.close()
        await talker.close()
