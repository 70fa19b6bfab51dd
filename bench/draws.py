"""Draw-close benchmark: how long after `ends_at` a viewer gets `draw_result`, and the
longest single Redis command of the close, at N entrants.

Starts its own Redis and one hub, connects one viewer, starts a `join` draw over HTTP and
writes N entrants (and their names) straight into the draw's entrants set, as N `join_draw`
calls would have (`--mode online`: into the room's presence hash, as N viewers on some hub
would have, which the close copies into the entrants). Just before `ends_at` the shard logs
every command over 200 us (SLOWLOG); after the result arrives the longest are printed.

    .venv/bin/python bench/draws.py --entrants 100000
    .venv/bin/python bench/draws.py --entrants 1000000 --winners 10000 --duration 30
    .venv/bin/python bench/draws.py --entrants 1000000 --mode online --duration 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from liveroom.auth import make_token  # noqa: E402
from liveroom.broker import keys as K  # noqa: E402
from bench.flash_sale import SECRET, start_hub  # noqa: E402  (a hub on its own port, joins create rooms)
from liveroom.redis_local import RedisProcess, find_server  # noqa: E402



async def run(a: argparse.Namespace, port: int, rp: RedisProcess) -> dict[str, Any]:
    import aiohttp
    import msgpack
    import redis as redis_sync

    room = "bench-draw"
    base = f"http://127.0.0.1:{port}"
    host = make_token(SECRET, "host", role="host", rooms=[room])
    rc = redis_sync.Redis.from_url(rp.url)
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(base + "/ws", params={"room": room, "token": make_token(SECRET, "viewer")})
        await ws.receive()  # welcome
        body = {"prize": "car", "winners": a.winners, "mode": a.mode, "duration_s": a.duration}
        async with s.post(f"{base}/api/rooms/{room}/draws", json=body, headers={"Authorization": f"Bearer {host}"}) as r:
            draw = (await r.json())["draw"]
        k = K.room_keys(room)
        t0 = time.monotonic()
        pipe = rc.pipeline(transaction=False)
        for i in range(0, a.entrants, 10_000):
            users = [f"user{j:08d}" for j in range(i, min(i + 10_000, a.entrants))]
            if a.mode == "online":  # present on some hub: the close copies them in (HSCAN)
                pipe.hset(k.ref, mapping={u: 1 for u in users})
            else:
                pipe.zadd(k.entrants, {u: 0 for u in users})
            pipe.hset(k.names, mapping={u: f"name {u}" for u in users})
            pipe.execute()
        loaded = time.monotonic() - t0
        ends_at = int(rc.hget(k.draws, f"{draw}:ends"))
        left = ends_at / 1000 - time.time()
        if left < 0.5:
            raise SystemExit(f"loading took {loaded:.1f} s: raise --duration")
        await asyncio.sleep(left - 0.3)
        rc.config_set("slowlog-max-len", 200_000)
        # every command over 200 us (0 would log each command run inside a script too, and
        # that logging itself slows a script of a thousand commands down tenfold)
        rc.config_set("slowlog-log-slower-than", 200)
        rc.slowlog_reset()
        while True:
            msg = await ws.receive(timeout=120)
            f = msgpack.unpackb(msg.data)
            if f.get("t") == "batch":
                res = [e for e in f["events"] if e["type"] == "draw_result"]
                if res:
                    got = time.time() * 1000
                    break
        rc.config_set("slowlog-log-slower-than", 10_000)
        log = rc.slowlog_get(200_000)
        await ws.close()
    rc.close()
    log.sort(key=lambda e: -e["duration"])
    top = [
        {"us": e["duration"], "command": " ".join(x[:40] for x in e["command"].decode(errors="replace").split()[:3])}
        for e in log[:5]
    ]  # fmt: skip
    return {
        "entrants": res[0]["entrants"],
        "winners": len(res[0]["winners"]),
        "load_s": round(loaded, 1),
        "result_after_ends_ms": round(got - ends_at),
        "commands_logged": len(log),
        "longest": top,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entrants", type=int, default=100_000)
    ap.add_argument("--winners", type=int, default=100)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--mode", choices=("join", "online"), default="join")
    a = ap.parse_args()
    rp = RedisProcess(find_server()).start()
    hub, port = start_hub(rp.url)
    try:
        print(json.dumps(asyncio.run(run(a, port, rp)), indent=1))
    finally:
        hub.terminate()
        hub.wait()
        rp.stop()


if __name__ == "__main__":
    main()
