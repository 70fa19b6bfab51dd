"""Live sessions ("每场"): a room is streamed again and again, and each stream is judged on
its own. `live_start` / `live_end` (host ops, or the HTTP API) open and close a session;
while one is live the Lua scripts that count the room's totals also count the session's
(lua/lib_session.lua), in the same atomic step, so both agree. A session nobody ends closes
itself after `sessions.idle_close_s` without a viewer: every hub's `closer` polls its
shards' index of rooms with a session, and live_end.lua closes it at most once.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import secrets
import time
from typing import Any

from liveroom.broker.base import Broker, SessionFigures
from liveroom.config import Config
from liveroom.core.session import Session
from liveroom.errors import CLOSED, NO_SUCH_SESSION, ReplyError, Unavailable
from liveroom.protocol import events
from liveroom.protocol import frames as F

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
TIMELINE_FIGURES = ("online", "comments", "likes", "orders", "gmv")
MAX_TIMELINE = 7 * 24 * 60  # entries a timeline shows at most (the last week of a session)
FORGET_AFTER_MS = 60_000  # an indexed room with no live session is dropped after this


def now_ms() -> int:
    return int(time.time() * 1000)


def new_session_id(started_at: int) -> str:
    return f"s{started_at:x}{secrets.token_hex(2)}"


def timeline(fields: dict[str, int], started_at: int, until: int) -> list[dict[str, int]]:
    """One entry a minute from the session's start to `until` (its end, or now), minutes
    with nothing as zeros: {t (minute start, ms), online, comments, likes, orders, gmv}."""
    per: dict[int, dict[str, int]] = {}
    for key, value in fields.items():
        minute, sep, figure = key.partition(":")
        if sep and figure in TIMELINE_FIGURES and minute.isdigit():
            per.setdefault(int(minute), {})[figure] = value
    first = started_at // MINUTE_MS * MINUTE_MS
    last = max(until, started_at) // MINUTE_MS * MINUTE_MS
    minutes = set(range(max(first, last - (MAX_TIMELINE - 1) * MINUTE_MS), last + 1, MINUTE_MS))
    minutes.update(m for m in per if first <= m <= last)
    return [{"t": m, **{f: per.get(m, {}).get(f, 0) for f in TIMELINE_FIGURES}} for m in sorted(minutes)]


def timeline_csv(entries: list[dict[str, int]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["t", *TIMELINE_FIGURES])
    for e in entries:
        writer.writerow([e["t"], *(e[f] for f in TIMELINE_FIGURES)])
    return out.getvalue()


def session_view(fig: SessionFigures, now: int) -> dict[str, Any]:
    """A session's figures as GET /api/rooms/{room}/sessions/{id} answers them."""
    f = fig.fields
    started = f.get("started_at", 0)
    ended = f.get("ended_at")
    return {
        "session": fig.id,
        "status": "live" if fig.live else "ended",
        "started_at": started,
        "ended_at": ended,
        "peak_online": f.get("peak_online", 0),
        "viewers": fig.viewers,
        "likes": f.get("likes", 0),
        "comments": f.get("comments", 0),
        "orders": {"confirmed": f.get("orders_confirmed", 0), "pending": f.get("orders_pending", 0)},
        "gmv": {"confirmed": f.get("gmv_confirmed", 0), "pending": f.get("gmv_pending", 0)},
        "draws": f.get("draws", 0),
        "timeline": timeline(f, started, ended if ended is not None else now),
    }


class LiveSessions:
    def __init__(self, cfg: Config, broker: Broker) -> None:
        self.cfg = cfg
        self.broker = broker

    @property
    def retention_ms(self) -> int:
        return int(self.cfg.sessions.retention_days * 86_400_000)

    async def start(self, s: Session, op: F.LiveStart) -> dict[str, Any]:
        """Starts a session, or answers the one live (`started` false, nothing published)."""
        at = now_ms()
        sid = new_session_id(at)
        body = events.pack(events.live("live", sid, at, None))
        seq, sid, at = await self.broker.live_start(s.room, body, sid, at)
        out: dict[str, Any] = {"session": sid, "started_at": at, "started": seq > 0}
        if seq > 0:
            out["seq"] = seq
        return out

    async def end(self, s: Session, op: F.LiveEnd) -> dict[str, Any]:
        """Ends the live session (`op.session` "" : whichever is live). Ending one that has
        ended answers its `ended_at` again (and refreshes its retention)."""
        out = await self.end_session(s.room, op.session, idle_ms=0)
        assert out is not None  # only an idle close can be declined
        return out

    async def end_session(self, room: str, session: str, idle_ms: int) -> dict[str, Any] | None:
        live = await self.broker.live_now(room)
        if not session:
            if live is None:
                raise ReplyError(CLOSED, "no live session in this room")
            session = live[0]
        started = live[1] if live is not None and live[0] == session else 0
        at = now_ms()
        body = events.pack(events.live("ended", session, started, at))
        seq, ended = await self.broker.live_end(room, body, session, at, self.retention_ms, idle_ms)
        if seq == -1:
            raise ReplyError(NO_SUCH_SESSION)
        if seq == -2:
            return None
        out: dict[str, Any] = {"session": session, "ended_at": ended, "ended": seq > 0}
        if seq > 0:
            out["seq"] = seq
        return out

    async def view(self, room: str, session: str) -> dict[str, Any]:
        fig = await self.broker.session_read(room, session)
        if fig is None:
            raise ReplyError(NO_SUCH_SESSION)
        return session_view(fig, now_ms())

    async def listing(self, room: str, count: int) -> list[dict[str, Any]]:
        """The room's sessions still kept, newest first: id, status, started_at, ended_at."""
        out = []
        for sid, started in await self.broker.sessions(room, count):
            fig = await self.broker.session_read(room, sid)
            if fig is None:
                continue  # expired
            out.append(
                {
                    "session": sid,
                    "status": "live" if fig.live else "ended",
                    "started_at": started,
                    "ended_at": fig.fields.get("ended_at"),
                }
            )
        return out

    async def closer(self) -> None:
        """Every hub runs this: ends the sessions with no viewer for idle_close_s (the
        script checks and ends atomically: one close however many hubs try)."""
        idle_ms = int(self.cfg.sessions.idle_close_s * 1000)
        interval = max(0.2, min(30.0, self.cfg.sessions.idle_close_s / 4))
        while True:
            await asyncio.sleep(interval)
            for registry in self.broker.registries():
                try:
                    for room, since in await self.broker.live_rooms(registry, 10_000):
                        await self._idle_check(room, since, idle_ms)
                except Unavailable as exc:
                    log.warning("session closer: %s", exc)
                except Exception:
                    log.exception("session closer failed")

    async def _idle_check(self, room: str, since: int, idle_ms: int) -> None:
        live = await self.broker.live_now(room)
        if live is None:
            if since < now_ms() - FORGET_AFTER_MS:  # not a start about to run its script
                await self.broker.live_forget(room)
            return
        try:
            out = await self.end_session(room, live[0], idle_ms)
        except ReplyError:
            return  # ended meanwhile
        if out is not None and out["ended"]:
            log.info("room %s: live session %s closed after %ss without viewers", room, live[0], idle_ms // 1000)
