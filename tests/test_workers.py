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
from typing import Callable

from liveroom.redis_local import RedisProcess, free_port
from tests.support import ROOT, SECRET, Client, eventually, t, token


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
               LIVEROOM_COMMENT_RATE="0", LIVEROOM_VIEWER_COMMENT_CAP="0", LIVEROOM_IMPLICIT_ROOMS="1")  # fmt: skip
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


def test_restart_delay_doubles_and_resets() -> None:
    """A worker dying young again and again waits 0.5, 1, 2 ... up to 30 s between
    restarts; one that had lived a minute is restarted after 0.5 s again."""
    from liveroom.cli import restart_delay

    delays = [0.0]
    for _ in range(10):
        delays.append(restart_delay(delays[-1], lived_s=1.0))
    assert delays[1:] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert restart_delay(30.0, lived_s=60.0) == 0.5


def _metric(base: str, name: str) -> float:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=t(5)).read().decode()
    m = re.search(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.M)
    assert m, text[:2000]
    return float(m.group(2))


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=t(2)) as r:
            return r.status == 200
    except OSError:
        return False


def _until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + t(timeout)
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def test_a_killed_worker_is_replaced(redis1: RedisProcess, tmp_path: Path) -> None:
    """SIGKILL one of two workers: the port keeps answering (the other worker), its viewers'
    sockets close and leave the connections gauge, the supervisor logs it and starts a new
    worker that serves; SIGTERM to the supervisor then ends every worker, none restarted."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, LIVEROOM_PORT=str(port), LIVEROOM_REDIS=redis1.url, LIVEROOM_SECRETS=SECRET,
               LIVEROOM_COMMENT_RATE="0", LIVEROOM_VIEWER_COMMENT_CAP="0", LIVEROOM_LOG="INFO",
               LIVEROOM_IMPLICIT_ROOMS="1")  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "supervisor.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "liveroom", "serve", "--workers", "2"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    clients: list[Client] = []
    try:
        # both listening, or the first one takes every viewer
        _until(lambda: log_path.read_text().count("listening on") == 2, 20, "two workers listening")
        first = set(children(proc.pid))
        assert len(first) == 2
        room = "k" + uuid.uuid4().hex[:8]
        clients = [await Client.connect(base, room, token(f"u{i}")) for i in range(10)]
        await eventually(lambda: _metric(base, "liveroom_connections") == 10, what="10 connections")

        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: any(c.closed.is_set() for c in clients), what="the victim's viewers cut off")
        # the survivor alone holds the port now: every request is answered
        assert all(_answers(base) for _ in range(20))
        _until(lambda: log_path.read_text().count("listening on") == 3, 20, "a new worker listening")
        assert len(set(children(proc.pid)) - first) == 1 and len(children(proc.pid)) == 2
        assert victim not in children(proc.pid)
        assert f"worker {victim} died (killed by SIGKILL)" in log_path.read_text()

        open_ = [c for c in clients if not c.closed.is_set()]
        assert 0 < len(open_) < 10  # SO_REUSEPORT spread them over both workers
        # the dead worker's sockets are not counted any more
        await eventually(lambda: _metric(base, "liveroom_connections") == len(open_), what=f"{len(open_)} connections")
        # the room goes on over the survivor and the new worker: 10 more viewers land on both
        more = [await Client.connect(base, room, token(f"w{i}")) for i in range(10)]
        clients += more
        assert (await more[0].call("comment", text="after the restart"))["ok"]
        for c in open_ + more:
            await c.wait_for(lambda c=c: len(c.of_type("comment")) == 1, what="the comment")
    finally:
        for c in clients:
            await c.close()
        workers = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(t(20))
    assert code == 0, log_path.read_text()
    assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in workers)
    text = log_path.read_text()
    assert "stopped on SIGTERM" in text
    assert text.count("restarted a worker") == 1, text  # nothing restarted on the way out


def _alive(pid: int) -> bool:
    try:
        state = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
