"""What one idle viewer costs the hub in objects CPython's cycle collector must walk, and how
long a full (generation 2) collection then takes.

A full collection walks every tracked object and touches everything they reference, and it
stops the hub while it runs. With aiohttp serving each socket (request, protocol, parser,
reader, writer, a task and its coroutines) that was 72 objects and 421 references per
connection, 45 us each: a 0.5 s stall at 10,000 viewers, which set the fan-out p99. Since
the socket is handed to our own protocol after the upgrade (web/takeover.py) it is ~10
objects and ~67 references. This tool runs a hub in this process (its own Redis), connects
--viewers idle viewers from a child process (bench/wsclient.py), and prints the
per-connection count by type, the resident memory per connection (the hub's RSS before and
after, as bench/fanout.py measures it) and the time of one full collection, so that a change
that adds objects or bytes per connection shows up.

    .venv/bin/python bench/gc_objects.py --viewers 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from liveroom import config as config_mod  # noqa: E402
from liveroom.redis_local import RedisProcess, find_server, free_port  # noqa: E402

SECRET = "gc-objects-secret-0123456789abcdef0123456789ab"
ROOM = "gc-objects"

CLIENT = """
import asyncio, sys
sys.path.insert(0, sys.argv[4])
import uvloop
from bench import wsclient as W
from liveroom.auth import make_token
port, n, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def main():
    socks = []
    for i in range(n):
        tok = make_token(secret, f"v{i}", name=f"viewer {i}", rooms=[%r])
        ws = await W.connect("127.0.0.1", port, "/ws", {"room": %r, "token": tok}, lambda *a: None, lambda *a: None)
        await ws.next_frame()
        socks.append(ws)
    print("connected", flush=True)
    await asyncio.sleep(3600)
uvloop.run(main())
""" % (ROOM, ROOM)


def census() -> tuple[Counter[str], Counter[str]]:
    """Tracked objects by type, and the references they hold: a collection visits every
    reference (and touches the object it points to), so its time follows references more
    than objects."""
    gc.collect()
    objs = gc.get_objects()
    refs: Counter[str] = Counter()
    for o in objs:
        refs[type(o).__name__] += len(gc.get_referents(o))
    return Counter(type(o).__name__ for o in objs), refs


def full_collection_ms() -> float:
    """Best of 5, after 2 untimed (the first ones after start-up still find garbage and
    touch cold memory): the machine is shared and noisy."""
    gc.collect()
    gc.collect()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        gc.collect()
        times.append(1000 * (time.perf_counter() - t))
    return min(times)


async def connect(port: int, n: int) -> asyncio.subprocess.Process:
    p = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(port), str(n), SECRET, str(ROOT), stdout=asyncio.subprocess.PIPE
    )
    assert p.stdout is not None
    line = await asyncio.wait_for(p.stdout.readline(), 60 + n / 100)
    if line.strip() != b"connected":
        raise RuntimeError(f"the client process failed: {line!r}")
    await asyncio.sleep(2.0)  # the hub's presence sync for the arrivals
    return p


async def main(n: int, top: int) -> None:
    from aiohttp import web

    from liveroom.web.app import build_app

    rp = RedisProcess(find_server()).start()
    port = free_port()
    env = {"LIVEROOM_REDIS": rp.url, "LIVEROOM_PORT": str(port), "LIVEROOM_SECRETS": SECRET, "LIVEROOM_MAX_CONN_PER_IP": "0",
           "LIVEROOM_IMPLICIT_ROOMS": "1"}
    cfg = config_mod.load(ROOT / "config.toml", env)
    runner = web.AppRunner(build_app(cfg), access_log=None, shutdown_timeout=1.0)
    clients: list[asyncio.subprocess.Process] = []
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        clients.append(await connect(port, 1))  # the room exists: its own objects are not counted
        before, rb = census()
        base_ms = full_collection_ms()
        rss0 = psutil.Process().memory_info().rss
        clients.append(await connect(port, n))
        after, ra = census()
        rss1 = psutil.Process().memory_info().rss
        full_ms = full_collection_ms()
        n0, n1 = sum(before.values()), sum(after.values())
        r0, r1 = sum(rb.values()), sum(ra.values())
        print(f"{n} idle viewers: tracked objects {n0:,} -> {n1:,}, {(n1 - n0) / n:.1f} per connection")
        print(f"references they hold: {r0:,} -> {r1:,}, {(r1 - r0) / n:.1f} per connection")
        print(f"resident memory: {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MB, {(rss1 - rss0) / n / 1024:.2f} KB per connection")
        print(
            f"one full collection (gc.collect(), best of 5): {base_ms:.1f} ms with 1 viewer, {full_ms:.1f} ms with "
            f"{n + 1}: {1000 * (full_ms - base_ms) / n:.1f} us per connection"
        )
        print("per connection, by type:            objects   references")
        for name, count in (after - before).most_common(top):
            print(f"  {name:32} {count / n:7.2f} {(ra[name] - rb[name]) / n:12.2f}")
    finally:
        for proc in clients:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
        rp.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=2000)
    ap.add_argument("--top", type=int, default=25, help="types to list")
    a = ap.parse_args()
    import uvloop

    uvloop.run(main(a.viewers, a.top))
