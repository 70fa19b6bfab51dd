"""Fan-out benchmark: one room, N viewers, a few commenters, comments sent to everyone.

Starts its own Redis and hub process(es) (`--hubs 2` splits the viewers across two hubs on
two ports, meeting in Redis), connects --viewers sockets spread over --procs load
processes (multiprocessing, each one uvloop loop with aiohttp websockets doing nothing per
frame but decode and record latency), then has --commenters connections send --rate
comments/s in total for --duration seconds, each comment's text starting with its send
time (`time.time()`), optionally --likes like frames/s and --buys buy frames/s from --buyers
more sockets on one sale a host opened over the HTTP API (liveroom only; by default the stock
is half the buys, so the sale sells out mid-run and `sold_out` reaches every viewer). Prints:

- deliveries/s: comment events received by all viewers, per second of the send window;
- latency p50/p99/max from the commenter's send to a viewer's decode (ms); it includes the
  load process working through its share of the sockets, see RESULTS.md;
- losses: acknowledged comments x viewers, minus comments received, minus the `dropped`
  counts the hub reported (per-viewer cap sampling); hub metrics say where losses went
  (slow-viewer skips, byes);
- the hub processes' CPU seconds (user+sys, psutil) over the run and deliveries per hub
  CPU-second, with the hub's idle CPU for reference;
- memory per connection: hub RSS after N idle viewers joined minus RSS before, / N;
- the CPU of the load processes, the commenter process, Redis and the whole machine (with
  steal), so a reader can see whether the load generator was the bottleneck.

`--peer socketio` runs the same scenario against bench/peers/socketio_server.py (python-
socketio on aiohttp with AsyncRedisManager) with a minimal Engine.IO/Socket.IO-over-
websocket client; `--peer node` against bench/peers/node/server.js (Node socket.io 4 with
@socket.io/redis-adapter; `npm ci` installs it on first use); `--compare` runs liveroom and
both peers in the same run (`--peers` picks which) and prints ours/peer ratios. `--pin`
(default `auto`: the last cpu for the server, the others for the rest; or `0:1`, or `off`)
puts the server process(es) on their core and everything else (load processes, commenters,
Redis, this process) on the others, so the server's figures are its own (see RESULTS.md).

    .venv/bin/python bench/fanout.py --viewers 1000 --rate 20 --duration 20
    .venv/bin/python bench/fanout.py --viewers 1000 --rate 50 --compare --json
    .venv/bin/python bench/fanout.py --viewers 1000 --rate 20 --likes 10 --buys 200
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from liveroom.auth import make_token  # noqa: E402
from liveroom.redis_local import RedisProcess, find_server, free_port  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
ROOM = "fanout"
PEER_SCRIPT = ROOT / "bench" / "peers" / "socketio_server.py"
NODE_DIR = ROOT / "bench" / "peers" / "node"
PEERS = ("node", "socketio")  # speak Engine.IO 4 / Socket.IO 5 over a websocket, same events

RES = 10_000  # latency histogram bins per second (0.1 ms)
NBINS = 120 * RES  # up to 120 s; slower lands in the last bin (max is kept exactly)

CTX = mp.get_context("fork")


# -- process hygiene ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the benchmark's main process dies, even by SIGKILL.
    Ctrl-C is the main process's business: it stops everything in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the main process's handler (fork)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Cleanup:
    """Everything started, stopped in reverse order, once, whatever happens."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._first: list[Callable[[], None]] = []

    def add(self, name: str, stop: Callable[[], None]) -> None:
        self._stops.append((name, stop))

    def first(self, fn: Callable[[], None]) -> None:
        """Run before any stop (e.g. tell the load processes to finish by themselves)."""
        self._first.append(fn)

    def run(self) -> None:
        for fn in self._first:
            try:
                fn()
            except Exception as exc:
                print(f"fanout: cleanup: {exc}", file=sys.stderr)
        self._first = []
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"fanout: stopping {name}: {exc}", file=sys.stderr)


def _stop_popen(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _stop_mp(p: Any) -> None:
    p.join(15)  # load processes close their sockets politely first (up to 5 s)
    if p.is_alive():
        p.terminate()
        p.join(5)
    if p.is_alive():
        p.kill()
        p.join()


# -- servers -----------------------------------------------------------------------------------


def start_redis() -> RedisProcess:
    """liveroom's throwaway Redis, but one that also dies with this process (PDEATHSIG)."""
    import types

    import liveroom.redis_local as rl

    real = rl.subprocess
    shim = types.SimpleNamespace(**vars(real))

    def popen(*args: Any, **kw: Any) -> Any:
        return real.Popen(*args, preexec_fn=_die_with_parent, **kw)  # type: ignore[call-overload]

    shim.Popen = popen
    rl.subprocess = shim  # type: ignore[assignment]
    try:
        return RedisProcess(find_server()).start()
    finally:
        rl.subprocess = real


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer /healthz on port {port}")


def start_server(kind: str, redis_url: str, a: argparse.Namespace, cleanup: Cleanup) -> tuple[int, int]:
    """(pid, port) of one liveroom hub or one socketio peer process, healthy."""
    port = free_port()
    env = dict(os.environ)
    env["LIVEROOM_LOG"] = "WARNING"
    if kind == "liveroom":
        env.update(
            LIVEROOM_HOST="127.0.0.1",
            LIVEROOM_PORT=str(port),
            LIVEROOM_REDIS=redis_url,
            LIVEROOM_SECRETS=SECRET,
            LIVEROOM_VIEWER_COMMENT_CAP=str(a.cap),
            LIVEROOM_COMMENT_RATE="0",
            LIVEROOM_FRAME_RATE="0",
            LIVEROOM_IMPLICIT_ROOMS="1",  # the bench joins rooms without creating them
        )
        if a.tick_ms:
            env["LIVEROOM_TICK_MS"] = str(a.tick_ms)
        cmd = [sys.executable, "-m", "liveroom", "serve", "--workers", "1"]
    elif kind == "node":
        cmd = ["node", str(NODE_DIR / "server.js"), "--port", str(port), "--redis", redis_url, "--secret", SECRET]
    else:
        cmd = [sys.executable, str(PEER_SCRIPT), "--port", str(port), "--redis", redis_url, "--secret", SECRET]
    if getattr(a, "hub_cpus", None):
        cmd = ["taskset", "-c", a.hub_cpus, *cmd]  # the server alone on its core(s): see --pin
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, preexec_fn=_die_with_parent)
    cleanup.add(f"{kind} {proc.pid}", lambda: _stop_popen(proc))
    _wait_healthy(proc, port, f"{kind} on port {port}")
    return proc.pid, port


def ensure_node_peer() -> None:
    """`npm ci` the Node peer from its package-lock.json when node_modules is missing."""
    if (NODE_DIR / "node_modules" / "socket.io").is_dir():
        return
    print("fanout: installing the Node peer (npm ci --prefix bench/peers/node)", file=sys.stderr)
    subprocess.run(["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"], check=True)


def _parse_pin(spec: str) -> tuple[str, str]:
    """'0:1' -> ('0', '1'): the server cores, then the cores of everything else (taskset lists)."""
    server, sep, rest = spec.partition(":")
    if not sep or not server or not rest:
        raise argparse.ArgumentTypeError("--pin wants SERVER_CPUS:OTHER_CPUS, e.g. 0:1 or 0:1-3")
    return server, rest


def _cpus(spec: str) -> set[int]:
    """A taskset cpu list ('0,2-3') as a set."""
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _wait_disconnected(ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(hub_metrics(p).get("liveroom_connections", 0.0) == 0 for p in ports):
            return
        time.sleep(0.2)


def hub_metrics(port: int) -> dict[str, float]:
    """The liveroom_* counters of one hub's /metrics, summed over labels."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r"^(liveroom_\w+?)(?:_total)?(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m and not m.group(1).endswith("_created"):
            name = m.group(1)
            label = m.group(2) or ""
            if name == "liveroom_byes" and label:
                name += "_" + label.split('"')[1]
            elif name.startswith("liveroom_gc_pause"):
                if not name.endswith(("_count", "_sum")):
                    continue
                name += "_gen" + label.split('"')[1]
            out[name] = out.get(name, 0.0) + float(m.group(3))
    return out


# -- clients (run in the load processes) -------------------------------------------------------


def hubs_metrics(ports: list[int]) -> dict[str, float]:
    """hub_metrics summed over the hubs."""
    out: dict[str, float] = {}
    for port in ports:
        for k, v in hub_metrics(port).items():
            out[k] = out.get(k, 0.0) + v
    return out


GC_FULL_N, GC_FULL_S = "liveroom_gc_pause_seconds_count_gen2", "liveroom_gc_pause_seconds_sum_gen2"


def _record(hist: list[int], lat: float) -> None:
    i = int(lat * RES)
    hist[0 if i < 0 else (i if i < NBINS else NBINS - 1)] += 1


def _sparse(hist: list[int]) -> dict[int, int]:
    return {i: n for i, n in enumerate(hist) if n}


def viewer_proc(
    idx: int, kind: str, ports: list[int], first: int, count: int, deflate: bool, q: Any, counts: Any, stop_evt: Any
) -> None:
    """`count` viewers (users v<first>.. v<first+count-1>) spread over `ports`."""
    _die_with_parent()
    import aiohttp
    import msgpack
    import uvloop

    BINARY, TEXT = aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT
    T = aiohttp.WSMsgType
    CLOSING = (T.CLOSE, T.CLOSING, T.CLOSED, T.ERROR)
    unpackb = msgpack.unpackb
    loads = json.loads
    now = time.time
    hist = [0] * NBINS
    st = {"received": 0, "dropped": 0, "frames": 0, "likes": 0, "online": 0, "max": 0.0, "closed": 0}
    byes: dict[str, int] = {}
    stopping = False

    async def read_liveroom(ws: aiohttp.ClientWebSocketResponse) -> None:
        received = dropped = 0
        frames = likes = 0
        lmax = 0.0
        try:
            while True:
                msg = await ws.receive()
                if msg.type is BINARY:
                    f = unpackb(msg.data)
                    t = f["t"]
                    if t == "batch":
                        at = now()
                        frames += 1
                        d = f.get("dropped")
                        if d:
                            dropped += d
                        n = 0
                        for e in f["events"]:
                            if e["type"] == "comment":
                                lat = at - float(e["text"].partition(" ")[0])
                                _record(hist, lat)
                                n += 1
                                if lat > lmax:
                                    lmax = lat
                            elif e["type"] == "likes":
                                likes += 1
                        received += n
                        # cheap progress for the main process: two word writes per frame
                        counts[2 * idx] += n
                        counts[2 * idx + 1] += n + (d or 0)
                    elif t == "bye":
                        byes[f.get("reason", "?")] = byes.get(f.get("reason", "?"), 0) + 1
                elif msg.type in CLOSING:
                    if not stopping:
                        st["closed"] += 1
                    return
        finally:
            st["received"] += received
            st["dropped"] += dropped
            st["frames"] += frames
            st["likes"] += likes
            st["max"] = max(st["max"], lmax)

    async def read_socketio(ws: aiohttp.ClientWebSocketResponse) -> None:
        received = frames = likes = 0
        lmax = 0.0
        try:
            while True:
                msg = await ws.receive()
                if msg.type is TEXT:
                    data = msg.data
                    if data.startswith("42"):
                        at = now()
                        frames += 1
                        ev = loads(data[2:])
                        if ev[0] == "comment":
                            lat = at - float(ev[1]["text"].partition(" ")[0])
                            _record(hist, lat)
                            received += 1
                            if lat > lmax:
                                lmax = lat
                            counts[2 * idx] += 1
                            counts[2 * idx + 1] += 1
                        elif ev[0] == "likes":
                            likes += 1
                    elif data == "2":
                        await ws.send_str("3")
                    elif data.startswith("41"):
                        byes["disconnect"] = byes.get("disconnect", 0) + 1
                elif msg.type in CLOSING:
                    if not stopping:
                        st["closed"] += 1
                    return
        finally:
            st["received"] += received
            st["frames"] += frames
            st["likes"] += likes
            st["max"] = max(st["max"], lmax)

    async def main() -> None:
        nonlocal stopping
        conn = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
            sem = asyncio.Semaphore(50)
            failed: dict[str, int] = {}

            async def connect(i: int) -> aiohttp.ClientWebSocketResponse | None:
                uid = f"v{i}"
                port = ports[i % len(ports)]
                tok = make_token(SECRET, uid, name=f"viewer {i}", rooms=[ROOM])
                for attempt in range(4):
                    try:
                        async with sem:
                            if kind == "liveroom":
                                ws = await s.ws_connect(
                                    f"http://127.0.0.1:{port}/ws",
                                    params={"room": ROOM, "token": tok},
                                    compress=15 if deflate else 0,
                                    autoping=True,
                                    max_msg_size=0,
                                )
                                first = await ws.receive(timeout=30)
                                if first.type is not BINARY or unpackb(first.data).get("t") != "welcome":
                                    raise RuntimeError(f"no welcome: {first.type}")
                            else:
                                ws = await s.ws_connect(
                                    f"http://127.0.0.1:{port}/socket.io/",
                                    params={"EIO": "4", "transport": "websocket"},
                                    compress=0,
                                    max_msg_size=0,
                                )
                                opened = await ws.receive(timeout=30)  # "0{sid, pingInterval, ...}"
                                if opened.type is not TEXT or not opened.data.startswith("0"):
                                    raise RuntimeError(f"no engine.io open: {opened.data!r}")
                                await ws.send_str("40" + json.dumps({"token": tok, "room": ROOM}))
                                ok = await ws.receive(timeout=30)
                                if ok.type is not TEXT or not ok.data.startswith("40"):
                                    raise RuntimeError(f"no socket.io connect: {ok.data!r}")
                        return ws
                    except Exception as exc:
                        key = type(exc).__name__
                        failed[key] = failed.get(key, 0) + 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                return None

            socks = [w for w in await asyncio.gather(*(connect(i) for i in range(first, first + count))) if w]
            reader = read_liveroom if kind == "liveroom" else read_socketio
            tasks = [asyncio.create_task(reader(ws)) for ws in socks]
            q.put(("ready", idx, len(socks), failed))
            while not stop_evt.is_set():
                await asyncio.sleep(0.1)
            stopping = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            res: dict[str, Any] = dict(st)
            res.update(idx=idx, hist=_sparse(hist), byes=byes, connected=len(socks), failed=failed)
            q.put(("result", idx, res))
            # close politely but briefly; the process exits anyway
            try:
                await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True), 5)
            except asyncio.TimeoutError:
                pass

    uvloop.run(main())


def viewer_proc_light(
    idx: int, kind: str, ports: list[int], first: int, count: int, deflate: bool, q: Any, counts: Any, stop_evt: Any
) -> None:
    """The same viewers as viewer_proc, on bench/wsclient.py: a protocol object per socket,
    no task per socket, and each distinct payload decoded once per process (every viewer of
    the room gets the same bytes each tick), so that 10,000 viewers fit beside the hub."""
    _die_with_parent()
    import msgpack
    import uvloop

    from bench import wsclient as W

    unpackb = msgpack.unpackb
    loads = json.loads
    now = time.time
    hist = [0] * NBINS
    st = {"received": 0, "dropped": 0, "frames": 0, "likes": 0, "online": 0, "max": 0.0, "closed": 0, "bytes": 0}
    byes: dict[str, int] = {}
    stopping = False
    # payload -> (comment send times, dropped, likes events, bye reason or None, reply or None)
    cache: dict[bytes, tuple[list[float], int, int, str | None, bytes | None]] = {}

    def summary(op: int, data: bytes) -> tuple[list[float], int, int, str | None, bytes | None]:
        got = cache.get(data)
        if got is not None:
            return got
        ts: list[float] = []
        dropped = likes = 0
        bye: str | None = None
        reply: bytes | None = None
        if kind == "liveroom":
            f = unpackb(data)
            t = f.get("t")
            if t == "batch":
                dropped = f.get("dropped") or 0
                for e in f["events"]:
                    if e["type"] == "comment":
                        ts.append(float(e["text"].partition(" ")[0]))
                    elif e["type"] == "likes":
                        likes += 1
            elif t == "bye":
                bye = f.get("reason", "?")
        else:
            if data.startswith(b"42"):
                ev = loads(data[2:])
                if ev[0] == "comment":
                    ts.append(float(ev[1]["text"].partition(" ")[0]))
                elif ev[0] == "likes":
                    likes += 1
            elif data == b"2":
                reply = b"3"
            elif data.startswith(b"41"):
                bye = "disconnect"
        if len(cache) > 64:
            cache.clear()
        got = cache[data] = (ts, dropped, likes, bye, reply)
        return got

    lmax = 0.0

    def on_message(ws: W.WSClient, op: int, data: bytes) -> None:
        nonlocal lmax
        ts, dropped, likes, bye, reply = summary(op, data)
        if reply is not None:
            ws.send(W.TEXT, reply)
            return
        if bye is not None:
            byes[bye] = byes.get(bye, 0) + 1
            return
        at = now()
        st["frames"] += 1
        st["bytes"] += len(data) + (2 if len(data) < 126 else 4 if len(data) < 65536 else 10)  # + frame header
        if likes:
            st["likes"] += likes
        if dropped:
            st["dropped"] += dropped
        n = len(ts)
        if n:
            for sent in ts:
                lat = at - sent
                i = int(lat * RES)
                hist[i if 0 <= i < NBINS else (NBINS - 1 if i > 0 else 0)] += 1
            worst = at - min(ts)
            if worst > lmax:
                lmax = worst
            st["received"] += n
        counts[2 * idx] += n
        counts[2 * idx + 1] += n + dropped

    live: set[W.WSClient] = set()  # connected and past the handshake

    def on_close(ws: W.WSClient) -> None:
        if not stopping and ws in live:
            st["closed"] += 1

    async def main() -> None:
        nonlocal stopping
        sem = asyncio.Semaphore(50)
        failed: dict[str, int] = {}

        async def connect(i: int) -> W.WSClient | None:
            uid = f"v{i}"
            port = ports[i % len(ports)]
            tok = make_token(SECRET, uid, name=f"viewer {i}", rooms=[ROOM])
            for attempt in range(4):
                ws: W.WSClient | None = None
                try:
                    async with sem:
                        if kind == "liveroom":
                            ws = await W.connect(
                                "127.0.0.1", port, "/ws", {"room": ROOM, "token": tok}, on_message, on_close,
                                deflate=deflate,
                            )  # fmt: skip
                            first = unpackb(await ws.next_frame())
                            if first.get("t") != "welcome":
                                raise RuntimeError(f"no welcome: {str(first)[:80]}")
                        else:
                            ws = await W.connect(
                                "127.0.0.1", port, "/socket.io/", {"EIO": "4", "transport": "websocket"},
                                on_message, on_close,
                            )  # fmt: skip
                            opened = await ws.next_frame()
                            if not opened.startswith(b"0"):
                                raise RuntimeError(f"no engine.io open: {opened[:40]!r}")
                            answer = ws.arm()  # before the reply can come
                            ws.send(W.TEXT, ("40" + json.dumps({"token": tok, "room": ROOM})).encode())
                            ok = await asyncio.wait_for(answer, 30)
                            if not ok.startswith(b"40"):
                                raise RuntimeError(f"no socket.io connect: {ok[:40]!r}")
                    live.add(ws)
                    return ws
                except Exception as exc:
                    if ws is not None:
                        ws.close()
                    key = f"{type(exc).__name__}: {exc}"[:60]
                    failed[key] = failed.get(key, 0) + 1
                    await asyncio.sleep(0.2 * (attempt + 1))
            return None

        socks = [w for w in await asyncio.gather(*(connect(i) for i in range(first, first + count))) if w]
        q.put(("ready", idx, len(socks), failed))
        while not stop_evt.is_set():
            await asyncio.sleep(0.1)
        stopping = True
        res: dict[str, Any] = dict(st)
        res.update(idx=idx, hist=_sparse(hist), byes=byes, connected=len(socks), failed=failed, max=lmax)
        q.put(("result", idx, res))
        for ws in socks:
            ws.close()
        await asyncio.sleep(0.5)

    uvloop.run(main())


def commenter_proc(
    kind: str,
    ports: list[int],
    n: int,
    rate: float,
    likes_rate: float,
    duration: float,
    q: Any,
    go_evt: Any,
    t_start: Any,
    stop_evt: Any,
    ack_wait: float,
    buys_rate: float = 0.0,
    sale: str | None = None,
    buyers: int = 0,
) -> None:
    """`n` commenters sharing `rate` comments/s (evenly spaced), `likes_rate` like frames/s,
    and `buyers` more sockets sharing `buys_rate` buys/s of `sale`, each with its own key."""
    _die_with_parent()
    import aiohttp
    import msgpack
    import uvloop

    BINARY, TEXT = aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT
    pending: dict[int, float] = {}  # id -> send time
    ack_hist = [0] * NBINS
    st = {"sent": 0, "ok": 0, "refused": 0, "likes_sent": 0, "send_late_max_ms": 0.0}
    errors: dict[str, int] = {}
    buy_pending: dict[int, float] = {}
    buy_hist = [0] * NBINS
    bst = {"sent": 0, "ok": 0}
    buy_errors: dict[str, int] = {}

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            at = time.time()
            if msg.type is BINARY:
                f = msgpack.unpackb(msg.data)
                if f["t"] == "reply" and f["id"] in buy_pending:
                    _record(buy_hist, at - buy_pending.pop(f["id"]))
                    if f["ok"]:
                        bst["ok"] += 1
                    else:
                        code = f["error"]["code"]
                        buy_errors[code] = buy_errors.get(code, 0) + 1
                elif f["t"] == "reply":
                    sent = pending.pop(f["id"], None)
                    if sent is not None:
                        _record(ack_hist, at - sent)
                    if f["ok"]:
                        st["ok"] += 1
                    else:
                        code = f["error"]["code"]
                        errors[code] = errors.get(code, 0) + 1
                        st["refused"] += 1
            elif msg.type is TEXT:
                data = msg.data
                if data.startswith("43"):  # ack: 43<id>[{...}]
                    j = data.index("[")
                    sent = pending.pop(int(data[2:j]), None)
                    if sent is not None:
                        _record(ack_hist, at - sent)
                    if loads(data[j:])[0].get("ok"):
                        st["ok"] += 1
                    else:
                        errors["refused"] = errors.get("refused", 0) + 1
                        st["refused"] += 1
                elif data == "2":
                    await ws.send_str("3")
            else:
                errors["closed"] = errors.get("closed", 0) + 1
                st["closed_at"] = round(at - t_start.value, 2) if t_start.value else -1
                return

    loads = json.loads

    async def main() -> None:
        async with aiohttp.ClientSession() as s:
            socks: list[aiohttp.ClientWebSocketResponse] = []
            for j in range(n):
                port = ports[j % len(ports)]
                tok = make_token(SECRET, f"c{j}", name=f"commenter {j}", rooms=[ROOM])
                if kind == "liveroom":
                    ws = await s.ws_connect(
                        f"http://127.0.0.1:{port}/ws", params={"room": ROOM, "token": tok}, compress=0
                    )
                    await ws.receive(timeout=30)  # welcome
                else:
                    ws = await s.ws_connect(
                        f"http://127.0.0.1:{port}/socket.io/", params={"EIO": "4", "transport": "websocket"}, compress=0
                    )
                    await ws.receive(timeout=30)
                    await ws.send_str("40" + json.dumps({"token": tok, "room": ROOM}))
                    await ws.receive(timeout=30)
                socks.append(ws)
            bsocks: list[aiohttp.ClientWebSocketResponse] = []
            for j in range(buyers if sale else 0):
                tok = make_token(SECRET, f"b{j}", name=f"buyer {j}", rooms=[ROOM])
                ws = await s.ws_connect(
                    f"http://127.0.0.1:{ports[j % len(ports)]}/ws", params={"room": ROOM, "token": tok}, compress=0
                )
                await ws.receive(timeout=30)  # welcome
                bsocks.append(ws)
            readers = [asyncio.create_task(reader(ws)) for ws in socks + bsocks]
            q.put(("ready", "commenters", n, {}))
            while not go_evt.is_set():  # t_start is set 0.3 s ahead of go
                if stop_evt.is_set():
                    return
                await asyncio.sleep(0.02)
            t0 = t_start.value
            end = t0 + duration
            next_id = [0]

            async def comments(j: int) -> None:
                ws = socks[j]
                k = 0
                while not stop_evt.is_set():
                    at = t0 + (k * n + j) / rate
                    if at >= end:
                        return
                    delay = at - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        st["send_late_max_ms"] = max(st["send_late_max_ms"], -delay * 1000)
                    next_id[0] += 1
                    cid = next_id[0]
                    sent = time.time()
                    text = f"{sent:.6f} c{j} #{k} bench comment"
                    try:
                        if kind == "liveroom":
                            await ws.send_bytes(msgpack.packb({"t": "comment", "id": cid, "text": text}))
                        else:
                            await ws.send_str(f"42{cid}" + json.dumps(["comment", {"text": text}]))
                    except (ConnectionError, RuntimeError) as exc:  # the hub went away: report, stop
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                        return
                    pending[cid] = sent
                    st["sent"] += 1
                    k += 1

            async def paced(per_s: float, send: Callable[[int], Any], errs: dict[str, int]) -> None:
                """send(m) for m = 0, 1, ... at `per_s` a second until the end of the window."""
                m = 0
                while not stop_evt.is_set():
                    at = t0 + m / per_s
                    if at >= end:
                        return
                    delay = at - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    try:
                        await send(m)
                    except (ConnectionError, RuntimeError) as exc:  # the hub went away: report, stop
                        errs[type(exc).__name__] = errs.get(type(exc).__name__, 0) + 1
                        return
                    m += 1

            async def like(m: int) -> None:
                ws = socks[m % n]
                if kind == "liveroom":
                    await ws.send_bytes(msgpack.packb({"t": "like", "n": 5}))
                else:
                    await ws.send_str("42" + json.dumps(["like", {"n": 5}]))
                st["likes_sent"] += 1

            async def buy(m: int) -> None:
                next_id[0] += 1
                bid = next_id[0]
                frame = {"t": "buy", "id": bid, "sale": sale, "qty": 1, "key": f"k{bid}"}
                await bsocks[m % len(bsocks)].send_bytes(msgpack.packb(frame))
                buy_pending[bid] = time.time()
                bst["sent"] += 1

            jobs = [comments(j) for j in range(n)] if rate > 0 else []
            if likes_rate > 0:
                jobs.append(paced(likes_rate, like, errors))
            if buys_rate > 0 and bsocks:
                jobs.append(paced(buys_rate, buy, buy_errors))
            await asyncio.gather(*jobs)
            deadline = time.time() + ack_wait
            while (pending or buy_pending) and time.time() < deadline:
                await asyncio.sleep(0.05)
            res: dict[str, Any] = dict(st)
            res.update(unacked=len(pending), errors=errors, ack_hist=_sparse(ack_hist))
            res["buys"] = dict(bst, unanswered=len(buy_pending), errors=buy_errors, hist=_sparse(buy_hist))
            q.put(("commenters", res))
            while not stop_evt.is_set():
                await asyncio.sleep(0.1)
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            final: dict[str, Any] = dict(st)
            final.update(unacked=len(pending), errors=errors)
            q.put(("commenters_final", final))
            await asyncio.gather(*(ws.close() for ws in socks + bsocks), return_exceptions=True)

    uvloop.run(main())


# -- one scenario -------------------------------------------------------------------------------


def _pct(hist: dict[int, int], p: float) -> float:
    total = sum(hist.values())
    if not total:
        return float("nan")
    want = p / 100 * total
    seen = 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= want:
            return (i + 0.5) / RES * 1000  # ms, bin middle
    return float("nan")


def _cpu(procs: list[Any]) -> list[float]:
    out = []
    for p in procs:
        try:
            t = p.cpu_times()
            out.append(t.user + t.system)
        except Exception:  # a process that died: count nothing more for it
            out.append(float("nan"))
    return out


_stash: list[tuple[Any, ...]] = []


def _get(q: Any, want: str, timeout: float, watch: list[tuple[str, Callable[[], bool]]]) -> tuple[Any, ...]:
    """Next message of kind `want` from the child processes (others are kept for later);
    fails fast if a watched process died."""
    import queue

    for i, msg in enumerate(_stash):
        if msg[0] == want:
            return _stash.pop(i)
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = q.get(timeout=0.25)
        except queue.Empty:
            dead = [name for name, alive in watch if not alive()]
            if dead:
                raise RuntimeError(f"waiting for {want}: {', '.join(dead)} exited") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"waiting for {want}: no answer in {timeout:.0f} s") from None
            continue
        if msg[0] == want:
            return msg  # type: ignore[no-any-return]
        _stash.append(msg)


def open_sale(port: int, a: argparse.Namespace) -> str:
    """A host opens the sale the buyers hit, over the HTTP API, as a shop's backend would."""
    host = make_token(SECRET, "shop", role="host", rooms=[ROOM])
    body = {"sku": "B1", "title": "bench jacket", "price": 9900, "stock": a.stock, "limit": a.stock}
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/rooms/{ROOM}/sales",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {host}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.load(r)["sale"])


def run(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    import psutil

    _stash.clear()
    cleanup = Cleanup()
    try:
        rp = start_redis()
        cleanup.add("redis", rp.stop)
        servers = [start_server(kind, rp.url, a, cleanup) for _ in range(a.hubs)]
        ports = [port for _, port in servers]
        if kind == "liveroom":
            # runs after the load processes have exited, before the hubs are stopped: a hub
            # stopped while thousands of sockets are still leaving logs Redis timeouts
            cleanup.add("hubs idle", lambda: _wait_disconnected(ports, 20.0))
        hub_ps = [psutil.Process(pid) for pid, _ in servers]

        def up(p: Any) -> Callable[[], bool]:
            return lambda: bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)

        watch: list[tuple[str, Callable[[], bool]]] = [(f"{kind} {p.pid}", up(p)) for p in hub_ps]
        redis_ps = psutil.Process(rp.proc.pid)  # type: ignore[union-attr]

        q = CTX.Queue()
        stop_evt = CTX.Event()
        go_evt = CTX.Event()
        t_start = CTX.Value("d", 0.0)
        counts = CTX.RawArray("q", 2 * a.procs)  # per load process: received, received+dropped

        cleanup.first(stop_evt.set)
        sale = open_sale(ports[0], a) if kind == "liveroom" and a.buys > 0 else None
        cp = CTX.Process(
            target=commenter_proc,
            args=(kind, ports, a.commenters, a.rate, a.likes, a.duration, q, go_evt, t_start, stop_evt, a.grace,
                  a.buys, sale, a.buyers),
            daemon=True,
        )  # fmt: skip
        cp.start()
        cleanup.add("commenters", lambda: _stop_mp(cp))
        watch.append(("the commenter process", cp.is_alive))
        _get(q, "ready", 60, watch)
        time.sleep(1.0)  # the room exists on every hub now; let start-up garbage settle
        rss0 = [p.memory_info().rss for p in hub_ps]

        per = [a.viewers // a.procs + (1 if i < a.viewers % a.procs else 0) for i in range(a.procs)]
        firsts = [sum(per[:i]) for i in range(a.procs)]
        vps = []
        t_conn = time.time()
        for i in range(a.procs):
            p = CTX.Process(
                target=viewer_proc if a.client == "aiohttp" else viewer_proc_light,
                args=(i, kind, ports, firsts[i], per[i], a.deflate, q, counts, stop_evt),
                daemon=True,
            )
            p.start()
            cleanup.add(f"load {i}", (lambda p: lambda: _stop_mp(p))(p))
            watch.append((f"load process {i}", p.is_alive))
            vps.append(p)
        connected = 0
        failed: dict[str, int] = {}
        for _ in vps:
            _, _, n, f = _get(q, "ready", 60 + a.viewers / 50, watch)
            connected += n
            for k, v in f.items():
                failed[k] = failed.get(k, 0) + v
        connect_s = time.time() - t_conn
        load_ps = [psutil.Process(p.pid) for p in vps]
        comm_ps = psutil.Process(cp.pid)

        # idle: N viewers connected, nothing said
        c_idle0 = _cpu(hub_ps)
        time.sleep(a.settle)
        c_idle1 = _cpu(hub_ps)
        rss1 = [p.memory_info().rss for p in hub_ps]
        hub_idle_pct = 100 * sum(y - x for x, y in zip(c_idle0, c_idle1)) / a.settle
        if a.idle > 0:  # idle mode: N viewers, nothing said, the hub's CPU over --idle seconds
            c0 = _cpu(hub_ps)
            time.sleep(a.idle)
            used_idle = sum(y - x for x, y in zip(c0, _cpu(hub_ps)))
            stop_evt.set()
            return {
                "peer": kind, "mode": "idle", "viewers": a.viewers, "connected": connected, "idle_s": a.idle,
                "hub_cpu_s": round(used_idle, 3), "hub_idle_cpu_pct": round(100 * used_idle / a.idle, 2),
                "hub_cpu_pct_per_10k": round(100 * used_idle / a.idle * 10_000 / max(connected, 1), 2),
                "mem_per_conn_kb": round((sum(rss1) - sum(rss0)) / max(connected, 1) / 1024, 2),
                "pinned_hub_cpus": a.hub_cpus,
            }  # fmt: skip

        start = time.time() + 0.3
        t_start.value = start
        go_evt.set()
        time.sleep(max(0.0, start - time.time()))
        watched = hub_ps + load_ps + [comm_ps, redis_ps]
        m0 = hubs_metrics(ports) if kind == "liveroom" else {}  # the full collections so far
        c0 = _cpu(watched)
        psutil.cpu_times_percent(None)  # machine-wide, from here
        _, cres = _get(q, "commenters", a.duration + 60, watch)
        ok = cres["ok"]
        # a comment not refused counts: one still unacknowledged may yet be delivered
        expected = (cres["sent"] - cres["refused"]) * connected
        # drain: until every acknowledged comment is received or accounted for as dropped,
        # or nothing has arrived for --grace seconds
        last, last_change = -1, time.time()
        drain_from = time.time()
        while True:
            seen = sum(counts[2 * i + 1] for i in range(a.procs))
            if seen >= expected:
                last_change = time.time()
                drain_end = "complete"
                break
            if seen != last:
                last, last_change = seen, time.time()
            elif time.time() - last_change > a.grace:
                drain_end = f"nothing for {a.grace:g} s"
                break
            if time.time() - drain_from > a.drain_max:
                drain_end = f"--drain-max {a.drain_max:g} s"
                break
            dead = [name for name, alive in watch if not alive()]
            if dead:
                raise RuntimeError(f"draining: {', '.join(dead)} exited")
            time.sleep(0.02)
        end = time.time()
        span = max(last_change - start, a.duration)  # first send to last delivery
        c1 = _cpu(watched)
        machine = psutil.cpu_times_percent(None)
        used = [y - x for x, y in zip(c0, c1)]
        window = end - start
        metrics = hubs_metrics(ports) if kind == "liveroom" else {}

        stop_evt.set()
        watch = [w for w in watch if w[0] != "the commenter process"]  # may finish now
        results = [_get(q, "result", 60, watch)[2] for _ in vps]
        final = _get(q, "commenters_final", 30, [])[1]
        hist: dict[int, int] = {}
        for r in results:
            for i, c in r["hist"].items():
                hist[i] = hist.get(i, 0) + c
        received = sum(r["received"] for r in results)
        dropped = sum(r["dropped"] for r in results)
        byes: dict[str, int] = {}
        for r in results:
            for k, v in r["byes"].items():
                byes[k] = byes.get(k, 0) + v
        nh, nl = len(hub_ps), len(load_ps)
        hub_cpu = sum(used[:nh])
        load_cpu = used[nh : nh + nl]
        ack = {int(k): v for k, v in cres["ack_hist"].items()}
        res: dict[str, Any] = {
            "peer": kind,
            "pin": a.hub_cpus and f"{a.hub_cpus}:{','.join(map(str, sorted(os.sched_getaffinity(0))))}",
            "viewers": a.viewers,
            "connected": connected,
            "connect_failures": failed,
            "connect_s": round(connect_s, 1),
            "hubs": a.hubs,
            "procs": a.procs,
            "commenters": a.commenters,
            "rate": a.rate,
            "likes_rate": a.likes,
            "duration_s": a.duration,
            "cap": a.cap if kind == "liveroom" else None,
            "deflate": a.deflate if kind == "liveroom" else False,
            "window_s": round(window, 2),
            "drain_s": round(end - drain_from, 2),
            "drain_end": drain_end,
            "comments_sent": cres["sent"],
            "comments_ok": final["ok"],
            "comments_refused": final["refused"],
            "comment_errors": final["errors"],
            "commenter_closed_at_s": final.get("closed_at"),
            "comments_unacked": final["unacked"],
            "comments_ok_when_drain_began": ok,
            "send_late_max_ms": round(cres["send_late_max_ms"], 1),
            "ack_p50_ms": round(_pct(ack, 50), 2),
            "ack_p99_ms": round(_pct(ack, 99), 2),
            "expected": expected,
            "received": received,
            "dropped_reported": dropped,
            "losses": expected - received - dropped,
            "delivery_span_s": round(span, 2),
            "deliveries_per_s": round(received / span, 1),
            "frames_per_s": round(sum(r["frames"] for r in results) / span, 1),
            # WebSocket bytes a viewer receives a second (light client only: 0 with --client aiohttp)
            "wire_bytes_per_viewer_s": round(sum(r.get("bytes", 0) for r in results) / max(connected, 1) / span, 1),
            "lat_p50_ms": round(_pct(hist, 50), 1),
            "lat_p99_ms": round(_pct(hist, 99), 1),
            "lat_max_ms": round(max((r["max"] for r in results), default=float("nan")) * 1000, 1),
            "viewer_disconnects": sum(r["closed"] for r in results),
            "byes": byes,
            "hub_cpu_s": round(hub_cpu, 2),
            "hub_cpu_pct": round(100 * hub_cpu / window, 1),
            "hub_idle_cpu_pct": round(hub_idle_pct, 1),
            "deliveries_per_hub_cpu_s": int(received / hub_cpu) if hub_cpu > 0 else None,
            "hub_rss_before_mb": round(sum(rss0) / 2**20, 1),
            "hub_rss_after_mb": round(sum(rss1) / 2**20, 1),
            "mem_per_conn_kb": round((sum(rss1) - sum(rss0)) / max(connected, 1) / 1024, 2),
            "load_cpu_s": [round(x, 2) for x in load_cpu],
            "load_cpu_pct_max": round(100 * max(load_cpu) / window, 1),
            "commenter_cpu_pct": round(100 * used[nh + nl] / window, 1),
            "redis_cpu_pct": round(100 * used[nh + nl + 1] / window, 1),
            "machine_busy_pct": round(100 - machine.idle, 1),
            "machine_steal_pct": round(getattr(machine, "steal", 0.0), 1),
        }
        if metrics:
            # full collections in the hub(s) from the first comment to the end of the drain
            res["gc_full_collections"] = int(metrics.get(GC_FULL_N, 0.0) - m0.get(GC_FULL_N, 0.0))
            res["gc_full_seconds"] = round(metrics.get(GC_FULL_S, 0.0) - m0.get(GC_FULL_S, 0.0), 3)
        if sale is not None:
            b = cres["buys"]
            bh = {int(k): v for k, v in b["hist"].items()}
            res.update(
                buys_rate=a.buys, buys_sent=b["sent"], buys_ok=b["ok"], buy_errors=b["errors"],
                buys_unanswered=b["unanswered"], buy_p50_ms=round(_pct(bh, 50), 2), buy_p99_ms=round(_pct(bh, 99), 2),
                sale_stock=a.stock,
            )  # fmt: skip
        if metrics:
            res["hub_metrics"] = {
                k.removeprefix("liveroom_"): v
                for k, v in sorted(metrics.items())
                if k.startswith(("liveroom_slow_skips", "liveroom_byes", "liveroom_sampled_out", "liveroom_deliveries",
                                 "liveroom_batches", "liveroom_repairs", "liveroom_errors", "liveroom_events_in"))
            }
        return res
    finally:
        cleanup.run()


# -- output -------------------------------------------------------------------------------------


ROWS = [
    ("viewers connected", "connected", ""),
    ("comments ok / sent", None, ""),
    ("comments unacked at end", "comments_unacked", ""),
    ("first send..last delivery", "delivery_span_s", "s"),
    ("deliveries/s", "deliveries_per_s", ""),
    ("frames/s to viewers", "frames_per_s", ""),
    ("latency p50", "lat_p50_ms", "ms"),
    ("latency p99", "lat_p99_ms", "ms"),
    ("latency max", "lat_max_ms", "ms"),
    ("comment ack p99", "ack_p99_ms", "ms"),
    ("expected deliveries", "expected", ""),
    ("received", "received", ""),
    ("dropped (reported by hub)", "dropped_reported", ""),
    ("losses", "losses", ""),
    ("viewer disconnects", "viewer_disconnects", ""),
    ("hub CPU", "hub_cpu_s", "s"),
    ("hub CPU %", "hub_cpu_pct", "%"),
    ("hub idle CPU % (N idle)", "hub_idle_cpu_pct", "%"),
    ("hub full GCs / their s", None, ""),
    ("deliveries / hub CPU-s", "deliveries_per_hub_cpu_s", ""),
    ("hub RSS before / after", None, ""),
    ("memory per connection", "mem_per_conn_kb", "KB"),
    ("load procs CPU % (max)", "load_cpu_pct_max", "%"),
    ("commenter proc CPU %", "commenter_cpu_pct", "%"),
    ("redis CPU %", "redis_cpu_pct", "%"),
    ("machine busy % / steal %", None, ""),
]


def _cell(r: dict[str, Any], label: str, key: str | None, unit: str) -> str:
    if key is None:
        if label.startswith("comments"):
            return f"{r['comments_ok']} / {r['comments_sent']}"
        if label.startswith("hub full GCs"):
            return f"{r['gc_full_collections']} / {r['gc_full_seconds']} s" if "gc_full_collections" in r else "-"
        if label.startswith("hub RSS"):
            return f"{r['hub_rss_before_mb']} / {r['hub_rss_after_mb']} MB"
        return f"{r['machine_busy_pct']} / {r['machine_steal_pct']}"
    v = r.get(key)
    return f"{v:,}{' ' + unit if unit else ''}" if isinstance(v, (int, float)) else str(v)


def table(results: list[dict[str, Any]]) -> str:
    r0 = results[0]
    head = (
        f"fan-out: {r0['viewers']} viewers, {r0['rate']:g} comments/s, {r0['likes_rate']:g} likes/s, "
        f"{r0['duration_s']:g} s, {r0['hubs']} hub(s), {r0['procs']} load procs, {r0['commenters']} commenters"
    )
    names = [r["peer"] + (f" (cap {r['cap']})" if r["cap"] is not None else "") for r in results]
    w = max(26, *(len(n) for n in names))
    lines = [head, f"{'':28}" + "".join(f"{n:>{w}}" for n in names)]
    for label, key, unit in ROWS:
        lines.append(f"{label:28}" + "".join(f"{_cell(r, label, key, unit):>{w}}" for r in results))
    for r in results:
        extra = {k: r[k] for k in ("connect_failures", "comment_errors", "byes") if r.get(k)}
        if "buys_sent" in r:
            extra["buys"] = {
                k: r[k] for k in ("buys_sent", "buys_ok", "sale_stock", "buy_errors", "buys_unanswered", "buy_p50_ms", "buy_p99_ms")
            }  # fmt: skip
        if r.get("drain_end") != "complete":
            extra["drain_end"] = r.get("drain_end")
        if r.get("hub_metrics"):
            extra["hub_metrics"] = r["hub_metrics"]
        if extra:
            lines.append(f"{r['peer']}: {json.dumps(extra)}")
        if r["load_cpu_pct_max"] > 85:
            lines.append(f"{r['peer']}: WARNING a load process was {r['load_cpu_pct_max']}% busy: it may be the bottleneck")
    return "\n".join(lines)


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    def div(x: Any, y: Any) -> float | None:
        return round(x / y, 2) if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y else None

    return {
        "deliveries_per_hub_cpu_s": div(ours["deliveries_per_hub_cpu_s"], peer["deliveries_per_hub_cpu_s"]),
        "lat_p99_ms": div(ours["lat_p99_ms"], peer["lat_p99_ms"]),
        "mem_per_conn_kb": div(ours["mem_per_conn_kb"], peer["mem_per_conn_kb"]),
        "deliveries_per_s": div(ours["deliveries_per_s"], peer["deliveries_per_s"]),
    }


def ratio_table(rt: dict[str, float | None], peer: str = "socketio") -> str:
    lines = [f"ours / {peer} peer:"]
    notes = {
        "deliveries_per_hub_cpu_s": "higher is better",
        "lat_p99_ms": "lower is better",
        "mem_per_conn_kb": "lower is better",
        "deliveries_per_s": "offered load, less what the cap samples out",
    }
    for k, v in rt.items():
        lines.append(f"  {k:28}{'' if v is None else v:>8}   ({notes[k]})")
    return "\n".join(lines)


def pin(a: argparse.Namespace) -> None:
    """Keep the hub, not the load generator, the thing measured: the hub process gets its own
    core(s) (taskset), this process and everything it forks (Redis, load processes,
    commenters) the others (sched_setaffinity, inherited)."""
    a.hub_cpus = None
    cpus = sorted(os.sched_getaffinity(0))
    if a.pin == "off" or (a.pin == "auto" and len(cpus) < 2):
        return
    if a.pin == "auto":
        hub, rest = str(cpus[-1]), ",".join(map(str, cpus[:-1]))
    else:
        hub, rest = _parse_pin(a.pin)
    a.hub_cpus = hub
    os.sched_setaffinity(0, _cpus(rest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes for the viewers")
    ap.add_argument(
        "--client", choices=["light", "aiohttp"], default="light",
        help="viewer sockets: bench/wsclient.py (default; decodes each distinct batch once per process) "
        "or aiohttp's client (one reader task and decode per socket, as in the first RESULTS rows)",
    )  # fmt: skip
    ap.add_argument("--hubs", type=int, default=1, choices=[1, 2, 3, 4])
    ap.add_argument("--commenters", type=int, default=4)
    ap.add_argument("--rate", type=float, default=20, help="comments/s, all commenters together")
    ap.add_argument("--likes", type=float, default=0, help="like frames/s (n=5 each), all commenters together")
    ap.add_argument("--buys", type=float, default=0, help="buy frames/s (qty 1, own key each) on one sale (liveroom only)")
    ap.add_argument("--buyers", type=int, default=50, help="buyer sockets sharing --buys")
    ap.add_argument("--stock", type=int, default=0, help="the sale's stock (default: half of the buys, so it sells out)")
    ap.add_argument("--duration", type=float, default=20, help="seconds of commenting")
    ap.add_argument("--cap", type=int, default=20, help="hub: LIVEROOM_VIEWER_COMMENT_CAP (0 = no sampling)")
    ap.add_argument("--tick-ms", type=int, default=0, help="hub: LIVEROOM_TICK_MS (default: the hub's)")
    ap.add_argument("--deflate", action="store_true", help="viewers offer permessage-deflate (liveroom only)")
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds after connecting, before RSS")
    ap.add_argument("--grace", type=float, default=10.0, help="stop waiting after this long without a delivery")
    ap.add_argument("--drain-max", type=float, default=60.0, help="never wait longer than this after the last ack")
    ap.add_argument("--peer", choices=["liveroom", *PEERS], default="liveroom")
    ap.add_argument("--compare", action="store_true", help="run liveroom, then the --peers, print ratios")
    ap.add_argument("--peers", default=",".join(PEERS), help="with --compare: which peers (node,socketio)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument(
        "--pin", default="auto",
        help="HUB:REST cpu lists for taskset, e.g. 1:0 (hub on cpu 1; Redis, load and commenter processes on cpu 0), "
        "'auto' (the last cpu for the hub, the others for the rest, if there are 2 or more) or 'off'",
    )  # fmt: skip
    ap.add_argument("--idle", type=float, default=0, help="idle mode: connect --viewers, measure the hub's CPU %% for "
                    "this many seconds with nothing said, and stop")  # fmt: skip
    a = ap.parse_args()
    pin(a)
    if a.viewers < 1 or a.procs < 1 or a.commenters < 1:
        ap.error("--viewers, --procs and --commenters must be >= 1")
    if a.buys > 0 and (a.compare or a.peer != "liveroom"):
        ap.error("--buys: the socketio peer has no sales; run it without --compare")
    if a.buys > 0 and a.buyers < 1:
        ap.error("--buyers must be >= 1")
    if a.stock <= 0:
        a.stock = max(1, int(a.buys * a.duration / 2))

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    peers = [p for p in a.peers.split(",") if p]
    if any(p not in PEERS for p in peers):
        ap.error(f"--peers: choose among {','.join(PEERS)}")
    kinds = ["liveroom", *peers] if a.compare else [a.peer]
    if "node" in kinds:
        ensure_node_peer()
    results = []
    try:
        for kind in kinds:
            results.append(run(kind, a))
    except KeyboardInterrupt:
        print("fanout: interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
    out: dict[str, Any] = {"runs": results}
    if a.compare:
        out["ratios"] = ratios(results[0], results[1])
        out["ratios_by_peer"] = {r["peer"]: ratios(results[0], r) for r in results[1:]}
    if a.json or a.idle > 0:
        print(json.dumps(out))
    else:
        print(table(results))
        if a.compare:
            for name, rt in out["ratios_by_peer"].items():
                print(ratio_table(rt, name))


if __name__ == "__main__":
    main()
