"""Bounded state: what N finished rooms leave in Redis, and what an idle hub then costs it.

Starts its own Redis and one hub (`liveroom serve`, room ttl `--ttl` s, pay window 1 s),
then plays N short rooms straight through the broker (as the hub's ops would): two viewers
come and go, a sale, three buys, one order confirmed, one cancelled, one left to expire,
the sale closed. It waits for the pay window and the ttl (plus `--settle` s), then prints the
keys left and the Redis commands per second the idle hub issues (INFO commandstats over
`--measure` s) and the commonest of them.

    .venv/bin/python bench/bounded_state.py --rooms 300
    .venv/bin/python bench/bounded_state.py --rooms 1000
    # an older tree (e.g. `git archive main | tar -x -C /tmp/before`), for before/after:
    .venv/bin/python bench/bounded_state.py --rooms 300 --code /tmp/before
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any


def args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rooms", type=int, default=300)
    p.add_argument("--ttl", type=float, default=2.0, help="room ttl (s) given to the hub")
    p.add_argument("--settle", type=float, default=4.0, help="seconds waited past pay window + ttl")
    p.add_argument("--measure", type=float, default=5.0, help="seconds of idle hub measured")
    p.add_argument("--code", default=str(Path(__file__).resolve().parent.parent), help="source tree to run")
    return p.parse_args()


A = args()
CODE = Path(A.code).resolve()
sys.path.insert(0, str(CODE))

from liveroom.auth import Identity  # noqa: E402
from liveroom.broker.base import BrokerEvents  # noqa: E402
from liveroom.broker.redis import RedisBroker  # noqa: E402
from liveroom.config import Config, RedisConfig, SalesConfig  # noqa: E402
from liveroom.core.sales import Sales  # noqa: E402
from liveroom.core.session import Session  # noqa: E402
from liveroom.protocol import frames as F  # noqa: E402
from liveroom.redis_local import RedisProcess, find_server, free_port  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # one of safety.KNOWN_DEV_SECRETS


def start_hub(redis_url: str) -> subprocess.Popen[bytes]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(CODE), LIVEROOM_HOST="127.0.0.1", LIVEROOM_PORT=str(port), LIVEROOM_REDIS=redis_url,
        LIVEROOM_SECRETS=SECRET, LIVEROOM_LOG="WARNING", LIVEROOM_IMPLICIT_ROOMS="1", LIVEROOM_PAY_WINDOW_S="1",
        LIVEROOM_ROOM_TTL_S=str(A.ttl),
    )  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "liveroom", "serve", "--workers", "1"], env=env, cwd=CODE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub did not start")


async def short_room(sales: Sales, broker: RedisBroker, room: str) -> None:
    host = Session(Identity("host", "Host", "host", (room,)), room, "host")
    await broker.presence_sync(room, ["a", "b"], [], 10_000, {"a": "A", "b": "B"})
    sale = (await sales.create(host, F.SaleCreate("SKU", "Hat", 100, 5, 2, 0, 0)))["sale"]
    orders = []
    for user in ("a", "b", "c"):
        me = Session(Identity(user, user, "viewer", None), room, "viewer")
        orders.append((await sales.buy(me, F.Buy(sale, 1, "k-" + user)))["order"])
    await sales.confirm(orders[0])
    await sales.cancel(orders[1])
    await broker.presence_sync(room, [], ["a", "b"], 10_000)
    await sales.close(host, F.SaleClose(sale))


def commands(r: Any) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k[8:]: int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}


async def main() -> None:
    import redis

    rp = RedisProcess(find_server()).start()
    hub = start_hub(rp.url)
    try:
        r = redis.Redis.from_url(rp.url)
        baseline = r.dbsize()
        cfg = Config(redis=RedisConfig(urls=(rp.url,)), sales=SalesConfig(pay_window_s=1.0))
        broker = RedisBroker(cfg.redis, "bench-hub", 1000)
        await broker.start(BrokerEvents(lambda room, m: None, lambda rooms: None))
        sales = Sales(cfg, broker)
        t0 = time.monotonic()
        rooms = [f"bs{uuid.uuid4().hex[:10]}" for _ in range(A.rooms)]
        for i in range(0, len(rooms), 100):
            await asyncio.gather(*(short_room(sales, broker, room) for room in rooms[i : i + 100]))
        played = time.monotonic() - t0
        await broker.close()
        written = r.dbsize()
        await asyncio.sleep(1.0 + A.ttl + A.settle)
        left = r.dbsize()
        with_ttl = sum(1 for k in r.scan_iter(count=1000) if r.pttl(k) > 0)
        before = commands(r)
        await asyncio.sleep(A.measure)
        after = commands(r)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        total = sum(delta.values())
        top = sorted(delta.items(), key=lambda kv: -kv[1])[:3]
        print(f"code: {CODE}")
        print(f"rooms {A.rooms} played in {played:.1f} s; keys: {baseline} before, {written} after the shows")
        names = sorted(k.decode() for k in r.scan_iter(count=1000)) if left <= 8 else []
        print(f"after pay window + ttl {A.ttl:g} s + {A.settle:g} s: {left} keys left ({with_ttl} with a TTL) {' '.join(names)}")
        print(f"idle hub: {total / A.measure:.1f} Redis commands/s; most: " + ", ".join(f"{k} {v / A.measure:.1f}/s" for k, v in top))
        r.close()
    finally:
        hub.terminate()
        hub.wait(10)
        rp.stop()


if __name__ == "__main__":
    asyncio.run(main())
