"""Wires one hub process: broker, hub, ops, endpoints; opened and closed with the app."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import AsyncIterator

from aiohttp import web

from liveroom import webhooks
from liveroom.auth import Authenticator
from liveroom.broker.redis import RedisBroker
from liveroom.config import Config
from liveroom.core.draws import Draws
from liveroom.core.expiry import RoomExpiry
from liveroom.core.hub import Hub
from liveroom.core.live import LiveSessions
from liveroom.core.milestones import Milestones
from liveroom.core.ops import Ops
from liveroom.core.sales import Sales
from liveroom.metrics import Metrics
from liveroom.web.http import HttpApi
from liveroom.web.pages import Pages
from liveroom.web.takeover import check_aiohttp
from liveroom.web.ws import WsEndpoint

log = logging.getLogger(__name__)

HUB = web.AppKey("hub", Hub)
WS = web.AppKey("ws", WsEndpoint)
BROKER = web.AppKey("broker", RedisBroker)
API = web.AppKey("api", HttpApi)


def make_hub_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(2)}"


def build_internal_app(app: web.Application) -> web.Application:
    """/healthz, /readyz and /metrics of `app`'s hub, for an internal address."""
    internal = web.Application()
    internal.router.add_routes(app[API].internal_routes())
    return internal


def build_app(cfg: Config) -> web.Application:
    check_aiohttp()  # the socket takeover's aiohttp internals: fail now, not on the first viewer
    app = web.Application(client_max_size=64 * 1024)
    metrics = Metrics()
    auth = Authenticator(cfg.auth.secrets, cfg.auth.anonymous)
    broker = RedisBroker(cfg.redis, make_hub_id(), cfg.room.history_len, cfg.sales)
    draws = Draws(cfg, broker)
    milestones = Milestones(broker, draws)  # a milestone with a draw starts it
    hub = Hub(cfg, broker, metrics, milestones)
    sales = Sales(cfg, broker, hub.sold_out)  # the hub's events keep its fast path honest
    live = LiveSessions(cfg, broker)
    ops = Ops(cfg, hub, broker, sales, milestones, draws, live)
    ws = WsEndpoint(cfg, hub, ops, auth, metrics)
    api = HttpApi(ops, sales, milestones, broker, auth, metrics, draws, live)
    app[HUB], app[WS], app[BROKER] = hub, ws, broker
    app.router.add_get("/ws", ws.handle)
    app.router.add_routes(api.routes(internal=not cfg.server.internal_port))
    app[API] = api
    app.router.add_routes(Pages(cfg).routes())  # /demo, /console, /static, /dev/token (when on)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await broker.start(hub.broker_events)
        hub.start()
        ws.start()
        unwatch = metrics.watch_gc()
        reaper = asyncio.create_task(sales.reaper(), name="order-reaper")
        sweeper = asyncio.create_task(RoomExpiry(cfg, broker).sweeper(), name="room-sweeper")
        closer = asyncio.create_task(draws.closer(), name="draw-closer")
        idle = asyncio.create_task(live.closer(), name="session-closer")
        hooks = webhooks.for_hub(cfg, broker.hub_id)  # order events to the shop (docs/shop.md)
        if hooks is not None:
            hooks.start()
        log.info("hub %s ready (%s)", broker.hub_id, "cluster" if broker.clustered else f"{len(cfg.redis.urls)} shard(s)")
        yield
        reaper.cancel()
        sweeper.cancel()
        closer.cancel()
        idle.cancel()
        if hooks is not None:
            await hooks.stop()
        await ws.drain()
        await ws.stop()
        await hub.stop()
        await broker.close()
        unwatch()

    async def on_shutdown(app: web.Application) -> None:
        # runs before connections are force-closed: viewers get `bye draining`
        await ws.drain()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return app
