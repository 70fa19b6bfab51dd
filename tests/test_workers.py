"""`liveroom serve --workers N`: N full hubs on one port, meeting in Redis."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from liveroom.redis_local import RedisProcess, free_port
from tests.support import ROOT, SECRET, Client, t, token


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


async def test_two_workers_share_a_port(redis1: RedisProcess) -> None:
    """Two worker processes accept on one port; viewers on either see every comment."""
    port = free_port()
    env = dict(os.environ, LIVEROOM_PORT=str(port), LIVEROOM_REDIS=redis1.url, LIVEROOM_SECRETS=SECRET,
               LIVEROOM_COMMENT_RATE="0", LIVEROOM_VIEWER_COMMENT_CAP="0")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "liveroom", "serve", "--workers", "2"], env=env, cwd=ROOT)
    clients: list[Client] = []
    try:
        deadline = time.monotonic() + t(20)
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                if len(children(proc.pid)) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert len(children(proc.pid)) == 2
        room = "w" + uuid.uuid4().hex[:8]
        base = f"http://127.0.0.1:{port}"
        clients = [await Client.connect(base, room, token(f"u{i}")) for i in range(12)]
        for c in clients[:4]:
            assert (await c.call("comment", text=c.welcome["user"]["id"]))["ok"]
        for c in clients:
            await c.wait_for(lambda c=c: len(c.of_type("comment")) == 4, what="4 comments")
        assert len({tuple(e["seq"] for e in c.of_type("comment")) for c in clients}) == 1
        # whichever worker answers a scrape, it reports the whole hub: 12 connections, not
        # the half it holds itself
        for _ in range(6):
            text = urllib.request.urlopen(f"{base}/metrics", timeout=t(5)).read().decode()
            assert re.search(r"^liveroom_connections(\{[^}]*\})? 12\.0$", text, re.M), text[:2000]
        # the cycle collector's pauses are timed (young collections happen under any traffic)
        gen0 = re.search(r'^liveroom_gc_pause_seconds_count\{generation="0"\} ([0-9.]+)$', text, re.M)
        assert gen0 and float(gen0.group(1)) > 0, text[:2000]
    finally:
        for c in clients:
            await c.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(t(20))
    await asyncio.sleep(0)
    assert not children(proc.pid)
