"""Sizing model: what one room of 600,000 viewers at 20 comments/s, with likes and a flash
sale, needs in hubs, cores, Redis shards and network, from per-unit costs measured here.

Why a model: such a room cannot be run on one machine, but each of its costs can be measured
on one, and they add up. Measured (each part starts its own Redis and hubs):

1. hub: `bench/fanout.py --json` with 1, 2 and 4 hub processes on one room (--hub-runs):
   hub CPU per comment delivery and per hub (a least-squares fit over the runs), hub CPU per
   idle viewer, resident memory per connection, WebSocket bytes per viewer-second, and the
   slope of all Redis CPU over the number of hubs;
2. Redis pub/sub: one channel with 0 / 10 / 25 / 50 subscribed connections (simulated hubs:
   raw sockets that read everything), a publisher at --pub-rate publishes/s of --pub-bytes
   each; Redis main-thread CPU (`INFO cpu`) per publish, the median of --repeat tries,
   fitted as base + per-subscriber cost;
3. the scripts: `redis-benchmark` EVALSHA of sale_buy.lua on a sale opened through a hub
   (a buy that takes stock, one answered sold_out), and room_comment.lua / room_like.lua
   from one viewer's comments and likes through a hub: Redis's own `usec_per_call` (INFO
   commandstats), or its CPU per call if less.

Then the derived table, with every assumption printed beside it (override them with flags).
`--from FILE` re-derives from the measurements of an earlier `--json` run.

    .venv/bin/python bench/sizing.py --pin 0:1
    .venv/bin/python bench/sizing.py --pin 0:1 --json > bench/out/sizing.json
    .venv/bin/python bench/sizing.py --from bench/out/sizing.json --buy-rate 30000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import SECRET, _cpus, _parse_pin, start_redis  # noqa: E402
from liveroom.auth import make_token  # noqa: E402
from liveroom.broker import keys as K  # noqa: E402
from liveroom.broker.scripts import source  # noqa: E402
from liveroom.protocol import events  # noqa: E402


# -- 1. hubs ---------------------------------------------------------------------------------


def measure_hubs(a: argparse.Namespace) -> list[dict[str, Any]]:
    """One fanout.py run per hub count; the figures the model needs from each."""
    out = []
    for hubs in a.hub_runs:
        cmd = [sys.executable, str(ROOT / "bench" / "fanout.py"), "--viewers", str(a.run_viewers), "--rate", str(a.rate),
               "--likes", str(a.likes), "--duration", str(a.duration), "--hubs", str(hubs), "--settle", str(a.settle),
               "--json"]  # fmt: skip
        if a.pin:
            cmd += ["--pin", ":".join(a.pin)]
        print(f"sizing: {' '.join(cmd[1:])}", file=sys.stderr)
        run = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout)["runs"][0]
        window = run["window_s"]
        comments = max(run["comments_ok"], 1)
        out.append(
            {
                "hubs": hubs,
                "viewers": run["connected"],
                "received": run["received"],
                "losses": run["losses"],
                "lat_p50_ms": run["lat_p50_ms"],
                "lat_p99_ms": run["lat_p99_ms"],
                "hub_cpu_s": run["hub_cpu_s"],
                "hub_core": round(run["hub_cpu_pct"] / 100, 4),
                "deliveries_per_s": round(run["received"] / window, 1),
                "us_per_delivery": round(1e6 * run["hub_cpu_s"] / max(run["received"], 1), 3),
                "idle_core_per_10k_viewers": round(run["hub_idle_cpu_pct"] / 100 / run["connected"] * 10_000, 4),
                "kb_per_conn": run["mem_per_conn_kb"],
                "bytes_per_viewer_s": run.get("wire_bytes_per_viewer_s"),
                "frames_per_viewer_s": round(run["frames_per_s"] / max(run["connected"], 1), 2),
                "redis_us_per_comment": round(1e6 * run["redis_cpu_pct"] / 100 * window / comments, 1),
                "redis_core": round(run["redis_cpu_pct"] / 100, 4),
                "rate": a.rate,
                "load_cpu_pct_max": run["load_cpu_pct_max"],
                "machine_busy_pct": run["machine_busy_pct"],
            }
        )
    return out


# -- 2. Redis pub/sub --------------------------------------------------------------------------


def _redis_cpu(info: dict[str, Any]) -> float:
    main = ("used_cpu_sys_main_thread", "used_cpu_user_main_thread")
    if all(k in info for k in main):
        return float(sum(info[k] for k in main))
    return float(info["used_cpu_sys"] + info["used_cpu_user"])


async def _pubsub_step(port: int, subs: int, rate: float, payload: bytes, seconds: float) -> dict[str, float]:
    import redis as redis_sync

    channel = b"lr:{sizing}:ch"
    readers: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []
    got = [0] * subs
    for _ in range(subs):
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        w.write(b"SUBSCRIBE " + channel + b"\r\n")
        await w.drain()
        await r.readuntil(b":1\r\n")  # the subscribe confirmation ends with the count
        readers.append(r)
        writers.append(w)

    async def drain(i: int, r: asyncio.StreamReader) -> None:
        while True:
            chunk = await r.read(1 << 18)
            if not chunk:
                return
            got[i] += len(chunk)

    tasks = [asyncio.create_task(drain(i, r)) for i, r in enumerate(readers)]
    pr, pw = await asyncio.open_connection("127.0.0.1", port)
    one = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(channel), channel, len(payload), payload)

    async def replies() -> None:
        while await pr.read(1 << 16):
            pass

    rt = asyncio.create_task(replies())
    ctl = redis_sync.Redis(port=port)
    await asyncio.sleep(0.3)
    cpu0 = _redis_cpu(ctl.info("cpu"))
    t0 = time.monotonic()
    sent = 0
    while True:  # every ~1 ms, what is due: like hubs' script calls, spread out, not one pipeline
        el = time.monotonic() - t0
        if el >= seconds:
            break
        due = int(el * rate) - sent
        if due > 0:
            pw.write(one * due)
            sent += due
        await asyncio.sleep(0.001)
    await pw.drain()
    # until the subscribers have everything: Redis's work for a message is done when it is
    # written (a subscriber that falls behind only moves the work later, into its buffer)
    msg_bytes = len(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(channel), channel, len(payload), payload))
    expected = sent * subs
    deadline = time.monotonic() + 30
    while sum(got) < expected * msg_bytes and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    cpu1 = _redis_cpu(ctl.info("cpu"))
    for w in writers + [pw]:
        w.close()
    for t in tasks + [rt]:
        t.cancel()
    await asyncio.gather(*tasks, rt, return_exceptions=True)
    ctl.close()
    delivered = sum(got) / msg_bytes if subs else 0.0
    return {
        "subscribers": subs,
        "publishes": sent,
        "publishes_per_s": round(sent / seconds, 1),
        "redis_cpu_s": round(cpu1 - cpu0, 4),
        "us_per_publish": round(1e6 * (cpu1 - cpu0) / max(sent, 1), 3),
        "delivered_fraction": round(delivered / expected, 3) if expected else 1.0,
    }


def measure_pubsub(a: argparse.Namespace) -> dict[str, Any]:
    """Redis CPU per publish against the number of subscribers; least-squares base + slope."""
    import uvloop

    rp = start_redis()
    try:
        if a.pin:
            import psutil

            psutil.Process(rp.proc.pid).cpu_affinity(sorted(_cpus(a.pin[0])))  # type: ignore[union-attr]
        payload = os.urandom(a.pub_bytes // 2).hex().encode()[: a.pub_bytes]
        steps = []
        for subs in a.pub_subs:
            # the median of a few tries: a busy machine adds to some, CPU accounting by ticks
            # takes from others
            tries = [uvloop.run(_pubsub_step(rp.port, subs, a.pub_rate, payload, a.pub_seconds)) for _ in range(a.repeat)]
            step = dict(sorted(tries, key=lambda t: t["us_per_publish"])[len(tries) // 2])
            step["tries_us"] = [t["us_per_publish"] for t in tries]
            print(f"sizing: pub/sub {step}", file=sys.stderr)
            steps.append(step)
    finally:
        rp.stop()
    xs = [s["subscribers"] for s in steps]
    ys = [s["us_per_publish"] for s in steps]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    return {
        "steps": steps,
        "payload_bytes": a.pub_bytes,
        "rate": a.pub_rate,
        "us_per_publish_base": round(my - slope * mx, 3),
        "us_per_publish_per_subscriber": round(slope, 3),
    }


def stock_publishes(stock: int) -> int:
    """How many stock values sale_buy.lua publishes while `stock` units sell one by one: one
    each time the value's first two digits change, every unit below 100 (the same rule)."""

    def shown(v: int) -> int:
        step = 1
        while v >= 100 * step:
            step *= 10
        return v - v % step

    return sum(1 for v in range(stock, 0, -1) if shown(v) != shown(v - 1))


# -- 3. the flash sale's Lua ---------------------------------------------------------------------


def measure_buy(a: argparse.Namespace) -> dict[str, Any]:
    """usec_per_call of sale_buy.lua, from Redis's own commandstats, for the two paths."""
    import redis as redis_sync

    from bench.flash_sale import start_hub

    if not shutil.which("redis-benchmark"):
        return {"error": "redis-benchmark not found"}
    rp = start_redis()
    hub, port = start_hub(rp.url)
    try:
        r = redis_sync.Redis.from_url(rp.url)
        sha = r.script_load(source("sale_buy"))
        out: dict[str, Any] = {}
        for path, stock in (("ok", a.buy_calls * 2), ("sold_out", 1)):
            room = f"buy-{path}"
            host = make_token(SECRET, "shop", role="host", rooms=[room])
            body = {"sku": "A1", "title": "jacket", "price": 9900, "stock": stock, "limit": 1}
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/rooms/{room}/sales", data=json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {host}", "Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=10) as resp:
                sale = str(json.load(resp)["sale"])
            k = K.room_keys(room)
            keys = [k.sales, k.bought(sale), k.idem(sale), k.orders, k.pending, K.SHARD_ORDERS_STREAM, k.meta, k.hist]
            args: list[str | bytes] = ["PUBLISH", k.channel, sale, "u__rand_int__", "1", "f__rand_int__", f"o-{sale}-", "900000",
                    "e", "1000", room, "k__rand_int__", events.pack(events.sold_out(sale))]  # fmt: skip
            tries = []
            for _ in range(a.repeat):
                r.config_resetstat()
                t0, cpu0 = time.monotonic(), _redis_cpu(r.info("cpu"))
                subprocess.run(
                    ["redis-benchmark", "-p", str(rp.port), "-c", "50", "-n", str(a.buy_calls // a.repeat), "-r",
                     "100000000", "-q", "EVALSHA", sha, str(len(keys)), *keys, *args],
                    capture_output=True, timeout=300, check=True,
                )  # fmt: skip
                wall, cpu = time.monotonic() - t0, _redis_cpu(r.info("cpu")) - cpu0
                st = r.info("commandstats").get("cmdstat_evalsha", {})
                calls = int(st.get("calls", 0))
                tries.append({
                    "calls": calls,
                    # Redis's own clock around the script (wall time: a busy machine adds to it),
                    # and the main thread's CPU per call (adds reading and parsing the command)
                    "usec_per_call_redis": float(st.get("usec_per_call", float("nan"))),
                    "cpu_us_per_call": round(1e6 * cpu / max(calls, 1), 2),
                    "calls_per_s_wall": round(calls / wall, 1),
                })  # fmt: skip
            best = sorted(tries, key=lambda t: min(t["usec_per_call_redis"], t["cpu_us_per_call"]))[len(tries) // 2]
            out[path] = dict(best, usec_per_call=min(best["usec_per_call_redis"], best["cpu_us_per_call"]), tries=tries)
            print(f"sizing: sale_buy.lua {path}: {out[path]}", file=sys.stderr)
        out.update(asyncio.run(_room_scripts(r, port, a.script_calls)))
        r.close()
        return out
    finally:
        hub.terminate()
        hub.wait(10)
        rp.stop()


async def _room_scripts(r: Any, port: int, n: int) -> dict[str, Any]:
    """usec_per_call of the scripts a comment and a like run (room_comment.lua, room_like.lua),
    sent by one viewer through the hub: one script call each, so commandstats' EVALSHA is
    theirs (a presence call or two among thousands)."""
    import aiohttp
    import msgpack

    room = "scripts"
    tok = make_token(SECRET, "u1", name="u1", rooms=[room])
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(f"http://127.0.0.1:{port}/ws", params={"room": room, "token": tok})
        await ws.receive(timeout=10)  # welcome
        await asyncio.sleep(1.5)  # presence settled
        for what in ("comment", "like"):
            r.config_resetstat()
            cpu0 = _redis_cpu(r.info("cpu"))
            for i in range(n):
                if what == "comment":
                    await ws.send_bytes(msgpack.packb({"t": "comment", "id": i + 1, "text": f"sizing comment {i} " + "x" * 40}))
                    while True:  # one at a time: each its own script call, as in a quiet room
                        f = msgpack.unpackb((await ws.receive(timeout=10)).data)
                        if f.get("t") == "reply":
                            break
                else:
                    await ws.send_bytes(msgpack.packb({"t": "like", "n": 1}))
                    await asyncio.sleep(0.11)  # one room_like per tick, as a hub sends them
                    if i >= n // 20:
                        break
            await asyncio.sleep(0.3)
            cpu = _redis_cpu(r.info("cpu")) - cpu0
            st = r.info("commandstats").get("cmdstat_evalsha", {})
            calls = int(st.get("calls", 0))
            wall_us = float(st.get("usec_per_call", float("nan")))
            # CPU per call includes Redis's own timers over the seconds this takes (a lot for
            # the likes, one per tick): the lesser of the two, both upper bounds
            cpu_us = 1e6 * cpu / max(calls, 1)
            out[what] = {"calls": calls, "usec_per_call_redis": wall_us, "cpu_us_per_call": round(cpu_us, 2),
                         "usec_per_call": min(wall_us, cpu_us)}  # fmt: skip
            print(f"sizing: {what} script: {out[what]}", file=sys.stderr)
        await ws.close()
    return out


# -- the model ---------------------------------------------------------------------------------


@dataclass
class Assumptions:
    viewers: int = 600_000
    comments_per_s: float = 20.0  # the room's rate; at or below the per-viewer cap: all delivered
    tick_ms: int = 100
    hub_util: float = 0.6  # a hub's target share of its core at the room's steady peak
    fd_cap: int = 15_000  # viewers per hub process: 20,000 open files per process, less headroom
    hub_base_mb: float = 60.0  # a hub's resident memory with no viewers
    like_taps_per_s: float = 20_000.0  # all viewers together; a hub sends one room_like per tick
    stock: int = 10_000  # units of the flash sale
    buy_rate: float = 12_000.0  # buy taps/s at the opening (20 % of viewers within 10 s)
    sold_out_fast_path: bool = True  # hubs answer sold_out themselves once they know (issue 16)
    redis_core_budget: float = 0.7  # the share of one Redis core a room's shard may use
    relay_subs_per_replica: int = 0  # 0: derived; hubs per replica when fan-out is split


def fit_hub(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """hub cores = deliveries/s x c + hubs x f, least squares over the runs (the same viewers
    and comments split over 1, 2, 4 hubs): c is the cost of one delivery, f what one more hub
    on the room costs whatever its viewers (reading the channel, its ticks, its scripts)."""
    sxx = sum(r["deliveries_per_s"] ** 2 for r in rows)
    syy = sum(r["hubs"] ** 2 for r in rows)
    sxy = sum(r["deliveries_per_s"] * r["hubs"] for r in rows)
    bx = sum(r["deliveries_per_s"] * r["hub_core"] for r in rows)
    by = sum(r["hubs"] * r["hub_core"] for r in rows)
    det = sxx * syy - sxy * sxy
    if len(rows) < 2 or abs(det) < 1e-9:  # one run: everything per delivery
        r = rows[0]
        return r["hub_core"] / r["deliveries_per_s"], 0.0
    c = (bx * syy - by * sxy) / det
    f = (sxx * by - sxy * bx) / det
    if f < 0 or c < 0:  # noise: fall back to the worst cost per delivery, nothing per hub
        return max(r["hub_core"] / r["deliveries_per_s"] for r in rows), 0.0
    return c, f


def derive(m: dict[str, Any], s: Assumptions) -> dict[str, Any]:
    """Hubs, cores, memory, bandwidth and the room's Redis load, from the measurements."""
    hub_rows = m["hubs"]
    c_deliv, f_hub = fit_hub(hub_rows)
    us_deliv = round(c_deliv * 1e6, 3)
    idle_10k = min(h["idle_core_per_10k_viewers"] for h in hub_rows)  # more hubs: their own ticks too
    kb = max(h["kb_per_conn"] for h in hub_rows)
    bps = max((h["bytes_per_viewer_s"] or 0.0) for h in hub_rows)
    redis_comment_us = m["buy"]["comment"]["usec_per_call"]
    redis_like_us = m["buy"]["like"]["usec_per_call"]
    # Redis's own cost of each hub on the room (heartbeats, presence, its like calls, its
    # client): the slope of the whole Redis CPU over the hub runs
    rc = [(h["hubs"], h["redis_core"] if "redis_core" in h else h["redis_us_per_comment"] * h.get("rate", 20) / 1e6) for h in hub_rows]
    mh = sum(x for x, _ in rc) / len(rc)
    var_h = sum((x - mh) ** 2 for x, _ in rc)
    redis_per_hub = max(0.0, sum((x - mh) * y for x, y in rc) / var_h) if var_h else 0.0
    per_viewer_core = s.comments_per_s * c_deliv + idle_10k / 10_000
    vph_cpu = int(max(s.hub_util - f_hub, 0.01) / per_viewer_core)
    vph = min(s.fd_cap, vph_cpu)
    hubs = math.ceil(s.viewers / vph)
    deliveries = s.viewers * s.comments_per_s
    ticks = 1000 / s.tick_ms

    pub = m["pubsub"]
    a_us, b_us = pub["us_per_publish_base"], pub["us_per_publish_per_subscriber"]

    def fanout_core(publishes_per_s: float, subs: int) -> float:
        """Redis core for writing each publish to `subs` subscribers. The publish's own cost
        (a_us: reading and running a PUBLISH) is not added: every publish here runs inside a
        script whose measured cost already holds it."""
        return float(publishes_per_s * subs * b_us / 1e6)

    like_pubs = hubs * ticks if s.like_taps_per_s >= hubs * ticks else s.like_taps_per_s
    steady_scripts = (s.comments_per_s * redis_comment_us + like_pubs * redis_like_us) / 1e6 + hubs * redis_per_hub
    steady_fan = fanout_core(s.comments_per_s + like_pubs, hubs)
    steady = steady_scripts + steady_fan
    buy = m["buy"]
    ok_us = buy["ok"]["usec_per_call"]
    so_us = buy["sold_out"]["usec_per_call"]
    budget = s.redis_core_budget
    steady_pubs = s.comments_per_s + like_pubs
    # the opening: every tap is a script call until the stock is gone; a unit sold publishes
    # the stock value to every subscriber of the channel only when its first two digits
    # change (sale_buy.lua): `pub_share` publishes per unit sold
    pub_share = stock_publishes(s.stock) / max(s.stock, 1)
    opening_core = steady + s.buy_rate * ok_us / 1e6 + fanout_core(s.buy_rate * pub_share, hubs)
    after_core = steady + (0.0 if s.sold_out_fast_path else s.buy_rate * so_us / 1e6)
    peak_pubs = steady_pubs + s.buy_rate * pub_share
    # split: hubs subscribe on replicas of the room's shard (Redis propagates PUBLISH, also
    # from scripts, to its replicas), each replica carrying at most what its budget allows;
    # the master then publishes to its replicas only
    per_replica = s.relay_subs_per_replica or max(1, int(budget / max(peak_pubs * b_us / 1e6, 1e-9)))
    replicas = math.ceil(hubs / per_replica) if per_replica < hubs else 0

    def buys_per_s(subs: int) -> float:
        """The most buys a second the shard answers while the stock lasts (its budget)."""
        spare = budget - steady_scripts - fanout_core(steady_pubs, subs)
        return max(spare, 0.0) / ((ok_us + pub_share * subs * b_us) / 1e6)

    cap_single = buys_per_s(hubs)
    cap_split = buys_per_s(replicas) if replicas else cap_single
    need_split = steady > budget or (cap_single < s.buy_rate and cap_split > 1.5 * cap_single)
    master_split = steady_scripts + fanout_core(steady_pubs, replicas) + min(s.buy_rate, cap_split) * (ok_us + pub_share * replicas * b_us) / 1e6
    script_bound = s.buy_rate * ok_us / 1e6 > budget - steady_scripts
    return {
        "assumptions": asdict(s),
        "unit_costs": {
            "hub_us_per_delivery": us_deliv,
            "hub_core_per_hub_on_room": round(f_hub, 4),
            "hub_core_per_10k_idle_viewers": idle_10k,
            "kb_per_conn": kb,
            "bytes_per_viewer_s": bps,
            "redis_us_per_comment_script": redis_comment_us,
            "redis_us_per_like_script": redis_like_us,
            "redis_core_per_hub": round(redis_per_hub, 5),
            "redis_us_per_publish_base": a_us,
            "redis_us_per_publish_per_subscriber": b_us,
            "redis_us_sale_buy_ok": ok_us,
            "redis_us_sale_buy_sold_out": so_us,
        },
        "viewers_per_hub_cpu": vph_cpu,
        "viewers_per_hub": vph,
        "hubs": hubs,
        "hub_cores": hubs,
        "deliveries_per_s": deliveries,
        "hub_memory_gb": round((s.viewers * kb / 1024 + hubs * s.hub_base_mb) / 1024, 1),
        "egress_gbit_s": round(s.viewers * bps * 8 / 1e9, 2),
        "egress_mbit_s_per_hub": round(vph * bps * 8 / 1e6, 1),
        "redis_publishes_per_s_steady": s.comments_per_s + like_pubs,
        "redis_core_steady": round(steady, 3),
        "redis_core_steady_fanout": round(steady_fan, 3),
        "redis_core_opening": round(opening_core, 3),
        "redis_core_after_sellout": round(after_core, 3),
        "redis_budget": budget,
        "buys_per_s_one_channel": round(cap_single),
        "sellout_s_one_channel": round(s.stock / min(s.buy_rate, cap_single), 2),
        "buys_per_s_split": round(cap_split),
        "sellout_s_split": round(s.stock / min(s.buy_rate, cap_split), 2),
        "sale_script_bound": script_bound,
        "fanout_split_needed": need_split,
        "hubs_per_replica": per_replica,
        "subscriber_replicas": replicas,
        "redis_core_master_with_split": round(master_split, 3),
    }


def table(m: dict[str, Any], d: dict[str, Any]) -> str:
    u, s = d["unit_costs"], d["assumptions"]
    lines = ["measured (per unit):"]
    for h in m["hubs"]:
        lines.append(
            f"  {h['hubs']} hub(s), {h['viewers']:,} viewers: {h['us_per_delivery']} us hub CPU per delivery, "
            f"{h['idle_core_per_10k_viewers']} core per 10k idle viewers, {h['kb_per_conn']} KB/conn, "
            f"{h['bytes_per_viewer_s']} B/viewer-s, all Redis CPU / comments {h['redis_us_per_comment']} us, "
            f"p50/p99 {h['lat_p50_ms']}/{h['lat_p99_ms']} ms, losses {h['losses']}, load proc max {h['load_cpu_pct_max']} %"
        )
    p = m["pubsub"]
    steps = ", ".join(f"{x['subscribers']} subs {x['us_per_publish']} us" for x in p["steps"])
    lines.append(
        f"  Redis PUBLISH of {p['payload_bytes']} B at {p['rate']:g}/s: {steps} -> "
        f"{p['us_per_publish_base']} us + {p['us_per_publish_per_subscriber']} us per subscriber"
    )
    lines.append(f"  fit over the hub runs: {u['hub_us_per_delivery']} us per delivery + {u['hub_core_per_hub_on_room']} core per hub")
    lines.append(
        f"  scripts (Redis usec_per_call): room_comment {u['redis_us_per_comment_script']}, room_like "
        f"{u['redis_us_per_like_script']}, sale_buy {u['redis_us_sale_buy_ok']} taking stock, "
        f"{u['redis_us_sale_buy_sold_out']} sold_out; Redis per hub on the room {u['redis_core_per_hub']} core"
    )
    lines.append("assumptions: " + ", ".join(f"{k}={v}" for k, v in s.items()))
    rows = [
        ("viewers per hub (CPU / chosen)", f"{d['viewers_per_hub_cpu']:,} / {d['viewers_per_hub']:,}"),
        ("hub processes = hub cores", f"{d['hubs']:,}"),
        ("comment deliveries/s", f"{d['deliveries_per_s']:,.0f}"),
        ("hub memory", f"{d['hub_memory_gb']} GB"),
        ("egress to viewers", f"{d['egress_gbit_s']} Gbit/s ({d['egress_mbit_s_per_hub']} Mbit/s per hub)"),
        ("room publishes/s (comments + likes)", f"{d['redis_publishes_per_s_steady']:,.0f}"),
        ("room shard, steady", f"{d['redis_core_steady']} core (fan-out {d['redis_core_steady_fanout']})"),
        ("room shard, sale opening at buy_rate", f"{d['redis_core_opening']} core needed"),
        (
            "buys/s the shard answers (one channel)",
            f"{d['buys_per_s_one_channel']:,} -> {s['stock']:,} units sold in {d['sellout_s_one_channel']} s",
        ),
        (
            f"  hubs on {d['subscriber_replicas']} replicas",
            f"{d['buys_per_s_split']:,} -> sold in {d['sellout_s_split']} s",
        ),
        ("the sale script alone exceeds the shard", "yes" if d["sale_script_bound"] else "no"),
        ("room shard, after sell-out", f"{d['redis_core_after_sellout']} core"),
        ("one channel the bottleneck?", "yes" if d["fanout_split_needed"] else "no"),
    ]
    if d["fanout_split_needed"]:
        rows.append(
            ("split: replicas carrying hubs", f"{d['subscriber_replicas']} replicas x {d['hubs_per_replica']} hubs; "
             f"master {d['redis_core_master_with_split']} core")
        )  # fmt: skip
    rows.append(("Redis shards for the room", f"1 master + {max(d['subscriber_replicas'], 1)} replica(s)"))
    w = max(len(r[0]) for r in rows)
    lines.append("model:")
    lines += [f"  {k:{w}}  {v}" for k, v in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pin", type=_parse_pin, default=None, metavar="SERVER:OTHER", help="as fanout.py --pin, e.g. 0:1")
    ap.add_argument("--run-viewers", type=int, default=4000, help="viewers in each hub run (all hubs together)")
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--likes", type=float, default=20, help="like frames/s in the hub runs")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--settle", type=float, default=4, help="idle seconds (the idle cost) before the comments")
    ap.add_argument("--hub-runs", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 4])
    ap.add_argument("--pub-subs", type=lambda v: [int(x) for x in v.split(",")], default=[0, 10, 25, 50])
    ap.add_argument("--pub-rate", type=float, default=2000)
    ap.add_argument("--pub-bytes", type=int, default=200, help="a published comment event's size")
    ap.add_argument("--pub-seconds", type=float, default=5)
    ap.add_argument("--buy-calls", type=int, default=60_000, help="EVALSHA calls per path, over --repeat tries")
    ap.add_argument("--repeat", type=int, default=3, help="tries of each Redis measurement; the median is kept")
    ap.add_argument("--script-calls", type=int, default=2000, help="comments sent one by one (likes: a 20th, one per tick)")
    ap.add_argument("--from", dest="src", help="re-derive from an earlier --json output instead of measuring")
    ap.add_argument("--parts", default="", help="measure only these (pubsub,buy,hubs); with --from, the rest from there")
    ap.add_argument("--json", action="store_true")
    defaults = Assumptions()
    for name, val in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(val, bool):
            ap.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=val)
        else:
            ap.add_argument(flag, type=type(val), default=val)
    a = ap.parse_args()
    m: dict[str, Any] = json.loads(Path(a.src).read_text())["measured"] if a.src else {}
    parts = [p for p in (a.parts.split(",") if a.parts else ([] if a.src else ["pubsub", "buy", "hubs"])) if p]
    if parts:
        if a.pin:
            os.sched_setaffinity(0, _cpus(a.pin[1]))
        run = {"pubsub": measure_pubsub, "buy": measure_buy, "hubs": measure_hubs}
        for part in parts:
            m[part] = run[part](a)
            m.setdefault("when", {})
            m["when"] = m["when"] if isinstance(m["when"], dict) else {"all": m["when"]}
            m["when"][part] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    s = Assumptions(**{k: getattr(a, k) for k in asdict(defaults)})
    d = derive(m, s)
    if a.json:
        print(json.dumps({"measured": m, "model": d}))
    else:
        print(table(m, d))


if __name__ == "__main__":
    main()
