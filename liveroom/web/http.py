"""The JSON HTTP API for hosts and the shop backend, plus health and metrics."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from liveroom.auth import Authenticator
from liveroom.broker.redis import RedisBroker
from liveroom.core.draws import Draws
from liveroom.core.ops import Ops
from liveroom.core.sales import Sales, live_sales, parse_order_id
from liveroom.core.session import Session
from liveroom.errors import BAD_FIELD, BAD_ROOM, BAD_TOKEN, FORBIDDEN, NO_SUCH_DRAW, Refused, ReplyError
from liveroom.metrics import Metrics
from liveroom.protocol import frames as F
from liveroom.protocol.codec import loads_json
from liveroom.web.ws import ROOM_RE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(code: str, message: str, status: int) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class HttpApi:
    def __init__(
        self, ops: Ops, sales: Sales, broker: RedisBroker, auth: Authenticator, metrics: Metrics,
        draws: Draws | None = None,
    ) -> None:  # fmt: skip
        self.draws = draws
        self.ops = ops
        self.sales = sales
        self.broker = broker
        self.auth = auth
        self.metrics = metrics

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics_text),
            web.get("/api/rooms/{room}", self.guard(self.room_stats)),
            web.post("/api/rooms/{room}/notices", self.guard(self.op_from_body("notice"))),
            web.post("/api/rooms/{room}/pin", self.guard(self.op_from_body("pin"))),
            web.post("/api/rooms/{room}/mutes", self.guard(self.op_from_body("mute"))),
            web.post("/api/rooms/{room}/sales", self.guard(self.op_from_body("sale_create"))),
            web.get("/api/rooms/{room}/sales/{sale}", self.guard(self.get_sale)),
            web.post("/api/rooms/{room}/sales/{sale}/close", self.guard(self.close_sale)),
            web.post("/api/rooms/{room}/draws", self.guard(self.op_from_body("draw_start"))),
            web.get("/api/rooms/{room}/draws/{draw}", self.guard(self.get_draw)),
            web.get("/api/orders/{order}", self.guard(self.get_order)),
            web.post("/api/orders/{order}/confirm", self.guard(self.confirm_order)),
            web.post("/api/orders/{order}/cancel", self.guard(self.cancel_order)),
        ]

    # -- plumbing --------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise Refused(BAD_TOKEN, "Authorization: Bearer <token> required")
        identity = self.auth.verify(header[7:].strip())
        room = request.match_info.get("room", "")
        if "order" in request.match_info:
            room, _ = parse_order_id(request.match_info["order"])
        if room and not ROOM_RE.match(room):
            raise Refused(BAD_ROOM, "bad room id")
        if room and not identity.is_host_of(room):
            raise Refused(FORBIDDEN, "a host token for this room, or an admin token, is required")
        if not room and identity.role != "admin" and identity.role != "host":
            raise Refused(FORBIDDEN, "host or admin only")
        return Session(identity, room, identity.role_in(room) if room else identity.role)

    def guard(self, fn: Callable[[web.Request, Session], Awaitable[Any]]) -> Handler:
        """Authenticate, run, and turn our errors into the PROTOCOL.md JSON body."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                session = self._session(request)
                result = await fn(request, session)
            except Refused as exc:
                return error_response(exc.code, exc.message, exc.status)
            except ReplyError as exc:
                self.metrics.errors.labels(exc.code).inc()
                return error_response(exc.code, exc.message, exc.http_status)
            return web.json_response({"ok": True, **(result or {})})

        return handler

    @staticmethod
    async def body(request: web.Request) -> dict[str, Any]:
        """The JSON body, strictly: NaN/Infinity come out as markers that parse_body refuses
        (`bad_field`), like over the WebSocket JSON codec."""
        try:
            data = loads_json(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
            raise ReplyError(BAD_FIELD, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise ReplyError(BAD_FIELD, "the body must be a JSON object")
        return data

    def op_from_body(self, kind: str) -> Callable[[web.Request, Session], Awaitable[Any]]:
        async def run(request: web.Request, session: Session) -> Any:
            op = F.parse_body(kind, await self.body(request))
            return await self.ops.handle(session, op)

        return run

    # -- handlers --------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        if await self.broker.ping_all():
            return web.json_response({"ok": True})
        return error_response("unavailable", "a Redis shard does not answer", 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def room_stats(self, request: web.Request, session: Session) -> dict[str, Any]:
        st = await self.broker.state(session.room)
        return {
            "room": session.room,
            "epoch": st.epoch,
            "seq": st.seq,
            "online": st.online,
            "peak_online": st.peak,
            "likes": st.likes,
            "comments": st.comments,
            "orders": {"confirmed": st.orders_confirmed, "pending": st.orders_pending},
            "gmv": {"confirmed": st.gmv_confirmed, "pending": st.gmv_pending},
            "sales": live_sales(st.sales),
        }

    async def get_sale(self, request: web.Request, session: Session) -> dict[str, Any]:
        return {"sale": await self.sales.sale(session.room, F.check_id(request.match_info["sale"], "sale"))}

    async def close_sale(self, request: web.Request, session: Session) -> Any:
        return await self.ops.handle(session, F.SaleClose(F.check_id(request.match_info["sale"], "sale")))

    async def get_order(self, request: web.Request, session: Session) -> dict[str, Any]:
        return {"order": await self.sales.order(request.match_info["order"])}

    async def confirm_order(self, request: web.Request, session: Session) -> dict[str, Any]:
        return await self.sales.confirm(request.match_info["order"])

    async def cancel_order(self, request: web.Request, session: Session) -> dict[str, Any]:
        return await self.sales.cancel(request.match_info["order"])

    async def get_draw(self, request: web.Request, session: Session) -> dict[str, Any]:
        """The draw; after the close its seed, winners and a page of its entrants:
        `?cursor=` (the previous page's `cursor`, absent for the first) `&count=` (1-10,000)."""
        if self.draws is None:
            raise ReplyError(NO_SUCH_DRAW, "draws are not enabled on this hub")
        draw = F.check_id(request.match_info["draw"], "draw")
        cursor = request.query.get("cursor", "")
        if cursor:
            F.check_input(cursor, "cursor")
        try:
            count = int(request.query.get("count", "1000"))
        except ValueError:
            raise ReplyError(BAD_FIELD, "count: must be an integer") from None
        return await self.draws.view(session.room, draw, cursor, count)
