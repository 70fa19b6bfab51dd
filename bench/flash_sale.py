"""Flash-sale benchmark: thousands of buyers hitting one sale through the WebSocket path.

Starts its own Redis and hub(s), opens one sale, connects --buyers sockets spread over
--procs load processes, and has every buyer tap `buy` (a fresh key each time, waiting for
each reply) for --duration seconds. Prints successful and rejected buys per second and
latency p50/p99 (send -> reply), the hub's CPU, and, against the same Redis in the same run,
the raw rate of EVALSHA of the same sale_buy.lua measured by redis-benchmark, so the result
reads as a ratio to what Redis itself can do.

    .venv/bin/python bench/flash_sale.py --buyers 2000 --duration 15

--replica gives the Redis a replica, so each buy's answer waits for it (WAIT, the default
sales.wait_replicas 1); --wait-replicas 0 turns the wait off: the pair of runs is its cost.
--compare runs it twice in one sitting, the hubs' sold-out fast path off
(LIVEROOM_SALES_FAST_PATH_KEYS=0) then on, and prints on/off of the answers per hub
CPU-second after the sell-out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from liveroom.auth import make_token  # noqa: E402
from liveroom.broker import keys as K  # noqa: E402
from liveroom.broker.scripts import source  # noqa: E402
from liveroom.protocol import events  # noqa: E402
from liveroom.redis_local import RedisProcess, find_server, free_port  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def start_hub(redis_url: str, cpus: str | None = None, **extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """A hub on `redis_url`; `cpus`: a taskset cpu list to keep it on (--pin); `extra`:
    more LIVEROOM_* settings."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        LIVEROOM_HOST="127.0.0.1",
        LIVEROOM_PORT=str(port),
        LIVEROOM_REDIS=redis_url,
        LIVEROOM_SECRETS=SECRET,
        LIVEROOM_FRAME_RATE="0",
        LIVEROOM_COMMENT_RATE="0",
        LIVEROOM_LOG="WARNING",
        LIVEROOM_IMPLICIT_ROOMS="1",  # the bench joins rooms without creating them
    )
    env.update(extra)
    cmd = [sys.executable, "-m", "liveroom", "serve", "--workers", "1"]
    proc = subprocess.Popen(["taskset", "-c", cpus, *cmd] if cpus else cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub did not start")


def buyer_proc(
    idx: int, ports: list[int], room: str, sale: str, users: list[str], start_at: float, duration: float, out: Any
) -> None:
    import aiohttp
    import msgpack
    import uvloop

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        codes: dict[str, int] = {}
        slots: dict[int, int] = {}  # answers per 100 ms of wall time, to count those after the sell-out
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as s:
            sem = asyncio.Semaphore(100)

            async def connect(i: int, u: str) -> aiohttp.ClientWebSocketResponse:
                async with sem:
                    port = ports[i % len(ports)]
                    ws = await s.ws_connect(
                        f"http://127.0.0.1:{port}/ws", params={"room": room, "token": make_token(SECRET, u)}
                    )
                    await ws.receive()
                    return ws

            socks = await asyncio.gather(*(connect(i, u) for i, u in enumerate(users)))
            await asyncio.sleep(max(0.0, start_at - time.time()))
            stop = time.time() + duration

            async def tap(n: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                k = 0
                while time.time() < stop:
                    k += 1
                    t0 = time.perf_counter()
                    await ws.send_bytes(msgpack.packb({"t": "buy", "id": k, "sale": sale, "qty": 1, "key": f"{idx}-{n}-{k}"}))
                    while True:
                        msg = await ws.receive()
                        if msg.type != aiohttp.WSMsgType.BINARY:
                            return
                        f = msgpack.unpackb(msg.data)
                        if f["t"] == "reply" and f["id"] == k:
                            break
                    lat.append(time.perf_counter() - t0)
                    slot = int(time.time() * 10)
                    slots[slot] = slots.get(slot, 0) + 1
                    code = "ok" if f["ok"] else f["error"]["code"]
                    codes[code] = codes.get(code, 0) + 1

            await asyncio.gather(*(tap(n, ws) for n, ws in enumerate(socks)))
            await asyncio.gather(*(ws.close() for ws in socks))
        return {"lat": lat, "codes": codes, "slots": slots}

    out.put(uvloop.run(main()))


def redis_benchmark(port: int, sha: str, room: str, sale: str, seconds: float) -> float:
    """EVALSHA of sale_buy.lua straight at Redis, on a sale opened like the hub's: random
    users and keys, so calls take stock until it is gone, then answer sold_out, as the hub's
    buyers do."""
    k = K.room_keys(room)
    keys = [k.sales, k.bought(sale), k.idem(sale), k.orders, k.pending, K.SHARD_ORDERS_STREAM, k.meta, k.hist]
    args = ["PUBLISH", k.channel, sale, "u__rand_int__", "1", "f__rand_int__", f"o-{sale}-", "900000",
            "e", "1000", room, "k__rand_int__", events.pack(events.sold_out(sale))]  # fmt: skip
    n = 20000
    best = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n), "-r", "100000000", "-q",
             "EVALSHA", sha, str(len(keys)), *keys, *args],
            capture_output=True, text=True, errors="replace", timeout=60,  # it echoes the binary event body
        )  # fmt: skip
        m = re.search(r"([\d.]+) requests per second", out.stdout)
        if m:
            best = max(best, float(m.group(1)))
        n = min(n * 2, 200000)
    return best


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=2000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--hubs", type=int, default=1)
    ap.add_argument("--stock", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--replica", action="store_true", help="give the Redis a replica (buys then WAIT for it)")
    ap.add_argument("--wait-replicas", type=int, default=1, help="LIVEROOM_SALES_WAIT_REPLICAS for the hubs")
    ap.add_argument("--no-raw", action="store_true", help="skip the redis-benchmark comparison")
    ap.add_argument("--pin", default="auto", help="HUB:REST cpu lists (taskset), 'auto' (last cpu for the hub(s)) or 'off'")
    ap.add_argument(
        "--compare", action="store_true", help="run twice, the sold-out fast path off then on, and print the ratio"
    )
    a = ap.parse_args()
    from bench.fanout import pin

    pin(a)  # the hub(s) alone on their core; Redis, buyers and redis-benchmark on the others
    if not a.compare:
        show(a, run(a))
        return
    off = run(a, LIVEROOM_SALES_FAST_PATH_KEYS="0")
    on = run(a)
    show(a, off, "fast path off")
    show(a, on, "fast path on")
    key = "answers_per_hub_cpu_s_after_sellout"
    if off.get(key) and on.get(key):
        ratio = {"fast_path_ratio_after_sellout": round(on[key] / off[key], 2)}
        print(json.dumps(ratio) if a.json else f"{'fast path on / off':>22}: {ratio['fast_path_ratio_after_sellout']}x")


def show(a: argparse.Namespace, res: dict[str, Any], title: str = "") -> None:
    if a.json:
        print(json.dumps({"run": title, **res} if title else res))
        return
    if title:
        print(f"--- {title}")
    for k_, v in res.items():
        print(f"{k_:>22}: {v}")


def run(a: argparse.Namespace, **hub_env: str) -> dict[str, Any]:
    """One run: its own Redis and hub(s); `hub_env`: more LIVEROOM_* settings for the hubs."""
    hub_cpus = a.hub_cpus
    import psutil
    import redis as redis_sync

    rp = RedisProcess(find_server()).start()
    replica = RedisProcess(find_server()).start() if a.replica else None
    if replica is not None:
        rr = redis_sync.Redis.from_url(replica.url)
        rr.replicaof("127.0.0.1", rp.port)
        rm = redis_sync.Redis.from_url(rp.url)
        deadline = time.monotonic() + 20
        while rm.info("replication").get("connected_slaves", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        rr.close()
        rm.close()
    env = {"LIVEROOM_SALES_WAIT_REPLICAS": str(a.wait_replicas), **hub_env}
    hubs = [start_hub(rp.url, hub_cpus, **env) for _ in range(a.hubs)]
    try:
        def open_sale(room: str) -> str:
            host = make_token(SECRET, "shop", role="host", rooms=[room])
            req = urllib.request.Request(
                f"http://127.0.0.1:{hubs[0][1]}/api/rooms/{room}/sales",
                data=json.dumps({"sku": "A1", "title": "jacket", "price": 9900, "stock": a.stock, "limit": 1}).encode(),
                headers={"Authorization": f"Bearer {host}", "Content-Type": "application/json"},
            )
            return str(json.load(urllib.request.urlopen(req))["sale"])

        room = "flash"
        sale = open_sale(room)
        # the same sale for redis-benchmark: the same stock, so its calls take the same paths
        # (stock taken, then sold_out) as the hub's buyers, not a cheap no_such_sale
        rb_room = "rb-room"
        rb_sale = open_sale(rb_room)
        ports = [p for _, p in hubs]
        users = [f"buyer{i}" for i in range(a.buyers)]
        q: mp.Queue[Any] = mp.Queue()
        start_at = time.time() + 3 + a.buyers / 800
        procs = [
            mp.Process(target=buyer_proc, args=(i, ports, room, sale, users[i :: a.procs], start_at, a.duration, q))
            for i in range(a.procs)
        ]
        for p in procs:
            p.start()
        hub_ps = [psutil.Process(h.pid) for h, _ in hubs]
        load_ps = [psutil.Process(p.pid) for p in procs]
        redis_ps = psutil.Process(rp.proc.pid)  # type: ignore[union-attr]
        time.sleep(max(0.0, start_at - time.time()))
        cpu0 = [x.cpu_times() for x in hub_ps + load_ps + [redis_ps]]
        t0 = time.time()
        # after the sell-out: from 1 s after the stock reached 0 (the hubs have heard of it)
        # to the end, the hubs' CPU and the answers given
        watch = redis_sync.Redis.from_url(rp.url)
        sold_at = None
        while time.time() < t0 + a.duration - 2:
            if int(watch.hget(K.room_keys(room).sales, f"{sale}:stock") or 1) <= 0:
                sold_at = time.time()
                break
            time.sleep(0.02)
        watch.close()
        after0 = None
        if sold_at is not None:
            time.sleep(max(0.0, sold_at + 1.0 - time.time()))
            after0 = (time.time(), sum((c.user + c.system) for c in (x.cpu_times() for x in hub_ps)))
            time.sleep(max(0.0, t0 + a.duration - 0.2 - time.time()))  # until the buyers stop (not their closing)
            after1 = (time.time(), sum((c.user + c.system) for c in (x.cpu_times() for x in hub_ps)))
        results = [q.get(timeout=a.duration + 120) for _ in procs]
        wall = time.time() - t0
        cpu1 = [x.cpu_times() for x in hub_ps + load_ps + [redis_ps]]
        for p in procs:
            p.join()
        used = [(b.user + b.system) - (s.user + s.system) for s, b in zip(cpu0, cpu1)]
        hub_cpu = sum(used[: len(hubs)])
        load_cpu = sum(used[len(hubs) : len(hubs) + len(procs)])
        redis_cpu = used[-1]

        lat = [x for r in results for x in r["lat"]]
        codes: dict[str, int] = {}
        for r in results:
            for c, n in r["codes"].items():
                codes[c] = codes.get(c, 0) + n
        ok = codes.get("ok", 0)
        rejected = sum(n for c, n in codes.items() if c != "ok")

        r = redis_sync.Redis.from_url(rp.url)
        sha = r.script_load(source("sale_buy"))
        sold = a.stock - int(r.hget(K.room_keys(room).sales, f"{sale}:stock"))
        waits = int(r.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))  # WAITs the hubs sent
        r.close()
        raw = redis_benchmark(rp.port, sha, rb_room, rb_sale, 6) if shutil.which("redis-benchmark") and not a.no_raw else float("nan")

        total = ok + rejected
        after: dict[str, Any] = {}
        if after0 is not None:
            hub_cpu_after = after1[1] - after0[1]
            first_slot, last_slot = int(after0[0] * 10) + 1, int(after1[0] * 10)  # whole 100 ms slots between
            answers_after = sum(n for r in results for sl, n in r["slots"].items() if first_slot <= sl < last_slot)
            hub_cpu_after *= (last_slot - first_slot) / 10 / (after1[0] - after0[0])  # the same span as the slots
            after = {
                "sold_out_after_s": round(sold_at - t0, 2) if sold_at else None,
                "answers_after_sellout": answers_after,
                "hub_cpu_after_sellout_s": round(hub_cpu_after, 2),
                "answers_per_hub_cpu_s_after_sellout": round(answers_after / hub_cpu_after, 1) if hub_cpu_after else None,
            }
        res = {
            "buyers": a.buyers,
            "replica": a.replica,
            "wait_replicas": a.wait_replicas,
            "hubs": a.hubs,
            "stock": a.stock,
            "wall_s": round(wall, 2),
            "ok": ok,
            "rejected": rejected,
            "codes": codes,
            "sold_in_redis": sold,
            "wait_calls": waits,
            "ok_per_s": round(ok / wall, 1),
            "rejected_per_s": round(rejected / wall, 1),
            "buys_per_s": round(total / wall, 1),
            "p50_ms": round(pct(lat, 50) * 1000, 2),
            "p99_ms": round(pct(lat, 99) * 1000, 2),
            "hub_cpu_s": round(hub_cpu, 2),
            "load_cpu_s": round(load_cpu, 2),
            "redis_cpu_s": round(redis_cpu, 2),
            "buys_per_hub_cpu_s": round(total / hub_cpu, 1) if hub_cpu else None,
            "redis_evalsha_per_s": round(raw, 1),
            "ratio_to_redis": round((total / wall) / raw, 3) if raw == raw and raw else None,
            **after,
            "pinned_hub_cpus": hub_cpus,
        }
        assert ok == sold <= a.stock, f"oversold or lost orders! ok {ok}, sold {sold}, codes {codes}"
        return res
    finally:
        for h, _ in hubs:
            h.terminate()
        for h, _ in hubs:
            try:
                h.wait(10)
            except subprocess.TimeoutExpired:
                h.kill()
        rp.stop()
        if replica is not None:
            replica.stop()


if __name__ == "__main__":
    main()
