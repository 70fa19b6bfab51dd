"""The JSON HTTP API for hosts and the shop backend, plus health and metrics."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from liveroom.auth import Authenticator
from liveroom.broker.redis import RedisBroker
from liveroom.core.draws import Draws
from liveroom.core.live import LiveSessions, timeline_csv
from liveroom.core.milestones import Milestones
from liveroom.core.ops import Ops, now_ms
from liveroom.core.rules import clean_line
from liveroom.core.sales import Sales, live_sales, parse_order_id
from liveroom.core.session import Session
from liveroom.errors import BAD_FIELD, BAD_ROOM, BAD_TOKEN, FORBIDDEN, NO_SUCH_DRAW, NO_SUCH_ROOM, NO_SUCH_SESSION, Refused, ReplyError
from liveroom.metrics import Metrics
from liveroom.protocol import frames as F
from liveroom.protocol.codec import loads_json
from liveroom.web.ws import ROOM_RE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# PUT /api/rooms/{room}: the fields a room's info hash takes (name -> longest, in characters)
ROOM_FIELDS = {"title": 128, "description": 1000}


# host ops over HTTP that take an `Idempotency-Key` header (the WebSocket ops' `key` field)
IDEMPOTENT_OPS = frozenset({"notice", "pin", "sale_create", "draw_start"})


def error_response(code: str, message: str, status: int) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class HttpApi:
    def __init__(
        self, ops: Ops, sales: Sales, milestones: Milestones, broker: RedisBroker, auth: Authenticator, metrics: Metrics,
        draws: Draws | None = None, live: LiveSessions | None = None,
    ) -> None:  # fmt: skip
        self.draws = draws
        self.live = live
        self.ops = ops
        self.sales = sales
        self.milestones = milestones
        self.broker = broker
        self.auth = auth
        self.metrics = metrics

    def internal_routes(self) -> list[web.RouteDef]:
        """What operators scrape: on the public port, or on server.internal_port alone."""
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics_text),
        ]

    def routes(self, internal: bool = True) -> list[web.RouteDef]:
        return [
            *(self.internal_routes() if internal else [web.get("/healthz", self.healthz)]),
            web.get("/api/rooms/{room}", self.guard(self.room_stats)),
            web.put("/api/rooms/{room}", self.guard(self.put_room, exists=False)),
            web.post("/api/rooms/{room}/notices", self.guard(self.op_from_body("notice"))),
            web.post("/api/rooms/{room}/pin", self.guard(self.op_from_body("pin"))),
            web.post("/api/rooms/{room}/mutes", self.guard(self.op_from_body("mute"))),
            web.post("/api/rooms/{room}/kicks", self.guard(self.op_from_body("kick"))),
            web.post("/api/rooms/{room}/bans", self.guard(self.op_from_body("ban"))),
            web.get("/api/rooms/{room}/words", self.guard(self.get_words)),
            web.put("/api/rooms/{room}/words", self.guard(self.put_words)),
            web.get("/api/rooms/{room}/reports", self.guard(self.get_reports)),
            web.post("/api/rooms/{room}/reports/{seq}/resolve", self.guard(self.resolve_report)),
            web.post("/api/rooms/{room}/sales", self.guard(self.op_from_body("sale_create"))),
            web.get("/api/rooms/{room}/sales/{sale}", self.guard(self.get_sale)),
            web.post("/api/rooms/{room}/sales/{sale}/close", self.guard(self.close_sale)),
            web.post("/api/rooms/{room}/milestones", self.guard(self.op_from_body("milestone_set"))),
            web.get("/api/rooms/{room}/milestones", self.guard(self.list_milestones)),
            web.delete("/api/rooms/{room}/milestones/{milestone}", self.guard(self.remove_milestone)),
            web.post("/api/rooms/{room}/draws", self.guard(self.op_from_body("draw_start"))),
            web.get("/api/rooms/{room}/draws/{draw}", self.guard(self.get_draw)),
            # PROTOCOL.md: a room exists once a host creates it with PUT or `live_start`
            web.post("/api/rooms/{room}/sessions", self.guard(self.start_session, exists=False)),
            web.get("/api/rooms/{room}/sessions", self.guard(self.list_sessions)),
            web.get("/api/rooms/{room}/sessions/{session}", self.guard(self.get_session)),
            web.post("/api/rooms/{room}/sessions/{session}/end", self.guard(self.end_session)),
            # orders: their scripts answer no_such_order for a room that does not exist
            web.get("/api/orders/{order}", self.guard(self.get_order, need="host_or_shop", exists=False)),
            web.post("/api/orders/{order}/confirm", self.guard(self.confirm_order, need="shop", exists=False)),
            web.post("/api/orders/{order}/cancel", self.guard(self.cancel_order, need="shop", exists=False)),
        ]

    # -- plumbing --------------------------------------------------------------------------

    def _session(self, request: web.Request, need: str = "host") -> Session:
        """Who calls, for which room. `need`: `host` (a host of the room, or admin), `shop`
        (the shop backend: `shop` for the room, or admin; a host is refused), or
        `host_or_shop`. Every route has a room: from the path, or the order id's own."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise Refused(BAD_TOKEN, "Authorization: Bearer <token> required")
        identity = self.auth.verify(header[7:].strip())
        room = request.match_info.get("room", "")
        if "order" in request.match_info:
            room, _ = parse_order_id(request.match_info["order"])  # a valid room id, or no_such_order
        if not ROOM_RE.match(room):
            raise Refused(BAD_ROOM, "bad room id")
        host, shop = identity.is_host_of(room), identity.is_shop_of(room)
        if need == "shop" and not shop:
            raise Refused(FORBIDDEN, "the shop backend (a shop token for this room) or an admin token is required")
        if need == "host_or_shop" and not (host or shop):
            raise Refused(FORBIDDEN, "a host or shop token for this room, or an admin token, is required")
        if need == "host" and not host:
            raise Refused(FORBIDDEN, "a host token for this room, or an admin token, is required")
        return Session(identity, room, identity.role_in(room))

    async def _room_exists(self, room: str) -> None:
        """Host ops on a room nobody created: 404 no_such_room, nothing written. Under
        room.implicit_rooms they create it, as a first join does."""
        if self.ops.cfg.room.implicit_rooms:
            return
        if not await self.broker.room_exists(room):
            raise ReplyError(NO_SUCH_ROOM, "no such room")

    def guard(
        self, fn: Callable[[web.Request, Session], Awaitable[Any]], need: str = "host", exists: bool = True
    ) -> Handler:
        """Authenticate, check the room exists (`exists`), run, and turn our errors into the
        PROTOCOL.md JSON body."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                session = self._session(request, need)
                if exists:
                    await self._room_exists(session.room)
                result = await fn(request, session)
                if isinstance(result, web.StreamResponse):  # not JSON (a CSV)
                    return result
            except Refused as exc:
                return error_response(exc.code, exc.message, exc.status)
            except ReplyError as exc:
                self.metrics.error(exc.code)
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
            body = await self.body(request)
            key = request.headers.get("Idempotency-Key")
            if key is not None and kind in IDEMPOTENT_OPS:
                body["key"] = key  # as the op's `key` field: a retry is answered as the first call
            op = F.parse_body(kind, body)
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

    async def put_room(self, request: web.Request, session: Session) -> dict[str, Any]:
        """Create the room (or update it: PUT again changes its title). Body: `title`
        (required, 1-128 characters) and optionally `description` (up to 1000), both cleaned
        like comment text; other fields are refused (`bad_field`)."""
        body = await self.body(request)
        fields: dict[str, str] = {}
        for key, value in body.items():
            if key not in ROOM_FIELDS:
                raise ReplyError(BAD_FIELD, f"{key}: unknown field (title, description)")
            if not isinstance(value, str):
                raise ReplyError(BAD_FIELD, f"{key}: must be a string")
            fields[key] = clean_line(F.check_str(value, key), ROOM_FIELDS[key])
        if not fields.get("title"):
            raise ReplyError(BAD_FIELD, "title: required, non-empty")
        created = await self.broker.room_put(session.room, fields, session.identity.id, now_ms())
        return {"room": session.room, "created": created, **fields}

    async def room_stats(self, request: web.Request, session: Session) -> dict[str, Any]:
        st = await self.broker.state(session.room, create=False)  # a GET writes nothing
        info = await self.broker.room_info(session.room)
        return {
            "room": session.room,
            "title": info.get("title", ""),
            "description": info.get("description", ""),
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

    # -- moderation (core/moderation.py) -----------------------------------------------------

    async def get_words(self, request: web.Request, session: Session) -> dict[str, Any]:
        return await self.ops.moderation.words_get(session.room)

    async def put_words(self, request: web.Request, session: Session) -> dict[str, Any]:
        return await self.ops.moderation.words_put(session.room, await self.body(request))

    async def get_reports(self, request: web.Request, session: Session) -> dict[str, Any]:
        """Reported comments, most reported first (at most 100)."""
        return {"reports": await self.ops.moderation.reports(session.room, 100)}

    async def resolve_report(self, request: web.Request, session: Session) -> Any:
        try:
            seq = int(request.match_info["seq"])
        except ValueError:
            raise ReplyError(BAD_FIELD, "seq: an integer") from None
        return await self.ops.resolve(session, seq, await self.body(request))

    async def list_milestones(self, request: web.Request, session: Session) -> dict[str, Any]:
        return {"milestones": await self.milestones.all(session.room)}

    async def remove_milestone(self, request: web.Request, session: Session) -> Any:
        return await self.ops.handle(session, F.MilestoneRemove(F.check_id(request.match_info["milestone"], "milestone")))

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

    # -- live sessions ---------------------------------------------------------------------

    def _live(self) -> LiveSessions:
        if self.live is None:
            raise ReplyError(NO_SUCH_SESSION, "live sessions are not enabled on this hub")
        return self.live

    async def start_session(self, request: web.Request, session: Session) -> Any:
        return await self.ops.handle(session, F.LiveStart())

    async def end_session(self, request: web.Request, session: Session) -> Any:
        return await self.ops.handle(session, F.LiveEnd(F.check_id(request.match_info["session"], "session")))

    async def list_sessions(self, request: web.Request, session: Session) -> dict[str, Any]:
        """The room's sessions, newest first; `?count=` 1-100 (default 20)."""
        try:
            count = int(request.query.get("count", "20"))
        except ValueError:
            raise ReplyError(BAD_FIELD, "count: must be an integer") from None
        if not 1 <= count <= 100:
            raise ReplyError(BAD_FIELD, "count: 1-100")
        return {"sessions": await self._live().listing(session.room, count)}

    async def get_session(self, request: web.Request, session: Session) -> Any:
        """One session's figures; `?format=csv`: its timeline as CSV."""
        sid = F.check_id(request.match_info["session"], "session")
        view = await self._live().view(session.room, sid)
        fmt = request.query.get("format", "json")
        if fmt == "csv":
            return web.Response(
                text=timeline_csv(view["timeline"]), content_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{session.room}-{sid}.csv"'},
            )  # fmt: skip
        if fmt != "json":
            raise ReplyError(BAD_FIELD, "format: json or csv")
        return {"session": view}
