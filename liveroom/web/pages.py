"""The demo viewer (/demo), the host console (/console), their static files, and the
development token endpoint (/dev/token) that lets the pages sign in without a shop backend.

The pages are plain files in liveroom/web/static (no build step): they import the JS client
from /static/client/ (clients/js/src, through the committed symlink static/client) and the
vendored msgpack codec and uPlot from /static/vendor/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Mapping

from aiohttp import web

from liveroom.auth import SUB_RE, make_token
from liveroom.config import Config
from liveroom.errors import BAD_FIELD, ReplyError
from liveroom.web.http import error_response
from liveroom.web.ws import ROOM_RE

STATIC = Path(__file__).resolve().parent / "static"
DEV_ROLES = ("viewer", "host")  # never admin or shop: a demo page needs no more
DEV_TTL_S = 1800  # short-lived: a page fetches a fresh one when it reconnects after `expired`
DEV_MAX_ROOMS = 10


@dataclass(frozen=True, slots=True)
class DevTokenRequest:
    sub: str
    name: str | None
    role: str
    rooms: list[str] | None


def dev_token_request(query: Mapping[str, str]) -> DevTokenRequest:
    """The token a `GET /dev/token?sub=&name=&role=viewer|host&rooms=a,b` asks for, or
    ReplyError(bad_field). `room=` is taken as `rooms=` (PROTOCOL.md names it so). A host
    token must list its rooms: a host acts only in the rooms its token lists."""
    sub = query.get("sub", "")
    if not SUB_RE.fullmatch(sub):
        raise ReplyError(BAD_FIELD, "sub: 1-128 characters of A-Z a-z 0-9 _ . : @ -")
    role = query.get("role", "viewer")
    if role not in DEV_ROLES:
        raise ReplyError(BAD_FIELD, f"role: one of {', '.join(DEV_ROLES)}")
    raw = query.get("rooms", "") or query.get("room", "")
    rooms = [r for r in (p.strip() for p in raw.split(",")) if r] or None
    if rooms is not None:
        if len(rooms) > DEV_MAX_ROOMS or not all(ROOM_RE.match(r) for r in rooms):
            raise ReplyError(BAD_FIELD, f"rooms: up to {DEV_MAX_ROOMS} comma-separated room ids")
    if role == "host" and rooms is None:
        raise ReplyError(BAD_FIELD, "rooms: a host token needs the rooms it hosts")
    name = query.get("name") or None
    if name is not None and len(name) > 64:
        raise ReplyError(BAD_FIELD, "name: at most 64 characters")
    return DevTokenRequest(sub, name, role, rooms)


class Pages:
    """Routes for the pages; /dev/token only when auth.dev_tokens is on (404 otherwise)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def routes(self) -> list[web.AbstractRouteDef]:
        client = STATIC / "client"  # a symlink to clients/js/src in a checkout
        routes: list[web.AbstractRouteDef] = [
            web.get("/demo", self.page("demo.html")),
            web.get("/console", self.page("console.html")),
        ]
        if client.is_dir():  # its own route: aiohttp's static route refuses to follow symlinks
            routes.append(web.static("/static/client", client.resolve()))
        routes.append(web.static("/static", STATIC))
        if self.cfg.auth.dev_tokens:
            routes.append(web.get("/dev/token", self.dev_token))
        return routes

    @staticmethod
    def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

        return handler

    async def dev_token(self, request: web.Request) -> web.Response:
        try:
            want = dev_token_request(request.query)
        except ReplyError as exc:
            return error_response(exc.code, exc.message, 400)
        if not self.cfg.auth.secrets:
            return error_response("unavailable", "no token secrets are configured on this hub", 503)
        token = make_token(self.cfg.auth.secrets[0], want.sub, name=want.name, role=want.role, rooms=want.rooms, ttl_s=DEV_TTL_S)
        return web.json_response(
            {"token": token, "sub": want.sub, "role": want.role, "rooms": want.rooms, "ttl_s": DEV_TTL_S},
            headers={"Cache-Control": "no-store"},
        )
