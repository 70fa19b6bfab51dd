"""The chaos run: each fault of issue 13 against real Redis and hub processes with load in
flight, one Markdown table row per fault (columns explained in bench/chaoslib.py).

    .venv/bin/python bench/chaos.py                       # every fault, full size (15 s stop, 5,000 watchers)
    .venv/bin/python bench/chaos.py --quick               # 5 s stop, 500 watchers
    .venv/bin/python bench/chaos.py --faults stop,failover --stop-s 30
    .venv/bin/python bench/chaos.py --faults failover --failover takeover

Faults: kill-empty, kill-aof, stop, hub-kill, failover, failover-lag (a replica cut off for
1.5 s, then promoted: the acked writes it lacks are lost), slow-socket. The load generator is
light on purpose (a few ops a second per room): the point is what survives, not speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import chaoslib  # noqa: E402
from bench.chaoslib import Result, Settings  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, commit {rev}"


async def run(a: argparse.Namespace) -> list[Result]:
    s = Settings(stop_s=a.stop_s, outage_s=a.outage_s, crowd=a.crowd, crowd_s=a.crowd_s)
    if a.quick:
        s.stop_s, s.crowd = min(s.stop_s, 5.0), min(s.crowd, 500)
    results: list[Result] = []
    for name in a.faults.split(","):
        print(f"-- {name}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        if name == "failover":
            r = await chaoslib.cluster_failover(s, a.failover)
        else:
            r = await chaoslib.FAULTS[name](s)
        print(r.row(), f"({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
        results.append(r)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faults", default=",".join(chaoslib.FAULTS), help="comma-separated, in order")
    p.add_argument("--stop-s", type=float, default=15.0, help="how long the shard stays SIGSTOPped")
    p.add_argument("--outage-s", type=float, default=3.0, help="how long a killed shard stays down")
    p.add_argument("--crowd", type=int, default=5000, help="viewers watching beside the one that never reads")
    p.add_argument("--crowd-s", type=float, default=15.0, help="how long the stalled-socket fault lasts")
    p.add_argument("--failover", choices=["kill", "takeover", "lag"], default="kill", help="how `failover` fails the master over")
    p.add_argument("--quick", action="store_true", help="a 5 s stop and 500 watchers")
    a = p.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = asyncio.run(run(a))
    print(f"`bench/chaos.py {' '.join(sys.argv[1:])}`, {started}, {machine()}\n")
    print(chaoslib.table(results))


if __name__ == "__main__":
    main()
