"""The fan-out benchmark's peer: the same live room written the usual python-socketio way.

One process: python-socketio `AsyncServer` on aiohttp, uvloop, `AsyncRedisManager` so that
several such processes (one per port) share rooms through Redis pub/sub, as a team would
scale a Socket.IO app. A client connects over the Engine.IO websocket transport with
`{"token": JWT, "room": ROOM}` as its connect auth (the same HS256 tokens as the hub), and
is put in the room; a `comment` event `{"text": ...}` is re-emitted to the room as
`comment` {type, user {id, name}, text, ts} (acknowledged with `{"ok": true}` when the
client asks for an ack); `like` {n} taps are summed per process, added to a Redis counter
every 100 ms and the total emitted to the room as `likes` {total} (an app author would not
emit per tap). No history, no sequence numbers, no per-viewer sampling, no presence:
less work than the hub does, on purpose the common baseline.

    python bench/peers/socketio_server.py --port 8090 --redis redis://127.0.0.1:6390/0 --secret S

`GET /healthz` answers 200 once Redis answers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
import warnings
from typing import Any

import jwt
import redis.asyncio as aioredis
import socketio
import uvloop
from aiohttp import web

LIKE_FLUSH_S = 0.1


def build(redis_url: str, secrets: list[str]) -> tuple[web.Application, socketio.AsyncServer]:
    mgr = socketio.AsyncRedisManager(redis_url, channel="bench-socketio")
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=mgr,
        transports=["websocket"],
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )
    app = web.Application()
    sio.attach(app)
    r = aioredis.Redis.from_url(redis_url)
    users: dict[str, tuple[dict[str, str], str]] = {}  # sid -> (user, room)
    taps: dict[str, int] = {}  # room -> likes not yet added to Redis

    def verify(token: str) -> dict[str, Any]:
        last: Exception | None = None
        for s in secrets:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return jwt.decode(token, s, algorithms=["HS256"], options={"require": ["sub", "exp"]})
            except jwt.PyJWTError as exc:
                last = exc
        raise ConnectionRefusedError(f"bad_token: {last}")

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
        auth = auth or {}
        claims = verify(str(auth.get("token", "")))
        room = str(auth.get("room", ""))
        if not room:
            raise ConnectionRefusedError("bad_room")
        users[sid] = ({"id": claims["sub"], "name": claims.get("name", claims["sub"])}, room)
        await sio.enter_room(sid, room)

    @sio.event
    async def disconnect(sid: str, *args: Any) -> None:
        users.pop(sid, None)

    @sio.event
    async def comment(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        # an overloaded server reads pongs late and engine.io may have declared this client
        # gone (ping timeout) while its comments still waited: they are dropped, as in an app
        if sid not in users:
            return {"ok": False, "error": "gone"}
        user, room = users[sid]
        text = str(data.get("text", ""))[:200]
        if not text.strip():
            return {"ok": False, "error": "empty"}
        ev = {"type": "comment", "user": user, "text": text, "ts": int(time.time() * 1000)}
        await sio.emit("comment", ev, room=room)
        return {"ok": True}

    @sio.event
    async def like(sid: str, data: dict[str, Any]) -> None:
        if sid not in users:
            return
        _, room = users[sid]
        n = int(data.get("n", 1))
        if 1 <= n <= 50:
            taps[room] = taps.get(room, 0) + n

    async def flush_likes() -> None:
        while True:
            await asyncio.sleep(LIKE_FLUSH_S)
            todo = list(taps.items())
            taps.clear()
            for room, n in todo:
                try:
                    total = await r.incrby(f"bench-socketio:likes:{room}", n)
                except Exception as exc:  # Redis down: keep the taps for the next round
                    taps[room] = taps.get(room, 0) + n
                    logging.warning("likes flush: %s", exc)
                    continue
                await sio.emit("likes", {"total": total}, room=room)

    async def healthz(request: web.Request) -> web.Response:
        await r.ping()
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)

    async def lifecycle(app: web.Application) -> Any:
        task = asyncio.create_task(flush_likes())
        yield
        task.cancel()
        await r.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app, sio


async def serve(host: str, port: int, redis_url: str, secrets: list[str]) -> None:
    app, _ = build(redis_url, secrets)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    logging.info("socketio peer on http://%s:%d (pid %d)", host, port, os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--redis", default=os.environ.get("LIVEROOM_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--secret", default=os.environ.get("LIVEROOM_SECRETS", ""), help="comma-separated HS256 secrets")
    a = ap.parse_args()
    logging.basicConfig(level=os.environ.get("LIVEROOM_LOG", "WARNING").upper())
    secrets = [s for s in a.secret.split(",") if s]
    if not secrets:
        ap.error("--secret (or LIVEROOM_SECRETS) is required")
    uvloop.run(serve(a.host, a.port, a.redis.split(",")[0], secrets))


if __name__ == "__main__":
    main()
