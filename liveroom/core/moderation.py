"""Moderation on a hub: the word filter each room's comments go through (the global list
from config plus the room's own, cached per hub), reports and their resolutions, mutes up
the escalation ladder. Kick and ban are plain ops (core/ops.py); the matching itself is
core/wordfilter.py.

A room's list is cached here and its version (one HGET) checked at most once a second per
room, so a PUT on any hub reaches every hub within about a second (at once on the hub
that took the PUT).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgpack

from liveroom.broker.base import Broker
from liveroom.config import Config
from liveroom.core.rules import clean_line
from liveroom.core.session import Session
from liveroom.core.wordfilter import ACTIONS, WordFilter, combine, load_words
from liveroom.errors import BAD_FIELD, FORBIDDEN, NO_SUCH_COMMENT, ReplyError
from liveroom.protocol import events

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0  # a room's list version is read at most this often per hub
MAX_CACHED = 10_000  # rooms whose filters a hub keeps (all dropped past it: re-read on use)


@dataclass(slots=True)
class _Cached:
    checked: float
    version: str
    filter: WordFilter
    action: str


class Moderation:
    def __init__(self, cfg: Config, broker: Broker) -> None:
        self.cfg = cfg.moderation
        self.broker = broker
        words = load_words(self.cfg.words_file) if self.cfg.words_file else []
        self.global_filter = WordFilter(words, self.cfg.contacts)
        self._rooms: dict[str, _Cached] = {}

    # -- the word filter ---------------------------------------------------------------------

    async def room_filter(self, room: str) -> tuple[WordFilter, str]:
        """The filter a comment in `room` goes through, and what a match does."""
        now = time.monotonic()
        c = self._rooms.get(room)
        if c is not None and now - c.checked < CHECK_EVERY_S:
            return c.filter, c.action
        version = await self.broker.words_version(room)
        if c is not None and c.version == version:
            c.checked = now
            return c.filter, c.action
        words, action, contacts, version = await self.broker.words(room)
        f = combine(self.global_filter, WordFilter(words, contacts)) if words or contacts else self.global_filter
        if len(self._rooms) >= MAX_CACHED:
            self._rooms.clear()
        self._rooms[room] = _Cached(now, version, f, action if action in ACTIONS else self.cfg.action)
        return f, self._rooms[room].action

    async def words_get(self, room: str) -> dict[str, Any]:
        words, action, contacts, _ = await self.broker.words(room)
        return {"words": words, "action": action or self.cfg.action, "contacts": contacts}

    async def words_put(self, room: str, body: dict[str, Any]) -> dict[str, Any]:
        words = body.get("words", [])
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ReplyError(BAD_FIELD, "words: a list of strings")
        if len(words) > self.cfg.max_words:
            raise ReplyError(BAD_FIELD, f"words: at most {self.cfg.max_words}")
        clean = sorted({w for w in (clean_line(w, 64) for w in words) if w})
        action = body.get("action", "refuse")
        if action not in ACTIONS:
            raise ReplyError(BAD_FIELD, "action: refuse, mask or shadow")
        contacts = body.get("contacts", False)
        if not isinstance(contacts, bool):
            raise ReplyError(BAD_FIELD, "contacts: true or false")
        await self.broker.words_put(room, clean, action, contacts)
        self._rooms.pop(room, None)  # this hub at once; the others within CHECK_EVERY_S
        return {"words": clean, "action": action, "contacts": contacts}

    # -- reports -----------------------------------------------------------------------------

    async def comment_at(self, room: str, seq: int) -> dict[str, Any]:
        """The comment published as `seq` (from the room's history), or no_such_comment."""
        got = await self.broker.history(room, seq - 1, 1)
        if not got or got[0][0] != seq:
            raise ReplyError(NO_SUCH_COMMENT, "no such comment in this room's history")
        event: dict[str, Any] = msgpack.unpackb(got[0][1])
        if event.get("type") != "comment":
            raise ReplyError(NO_SUCH_COMMENT, "that seq is not a comment")
        return event

    async def report(self, s: Session, seq: int, reason: str) -> int:
        if s.identity.anonymous:
            raise ReplyError(FORBIDDEN, "sign in to report")
        event = await self.comment_at(s.room, seq)
        if event["user"]["id"] == s.identity.id:
            raise ReplyError(BAD_FIELD, "seq: your own comment")
        body = events.pack({"user": event["user"], "text": event["text"]})
        return await self.broker.report(s.room, seq, s.identity.id, clean_line(reason, 200), body)

    async def reports(self, room: str, count: int = 100) -> list[dict[str, Any]]:
        out = []
        for seq, n, body, who in await self.broker.reports(room, count):
            comment = msgpack.unpackb(body) if body else {"user": None, "text": None}
            reasons = [r for r, _ in Counter(r for r in who.values() if r).most_common()]
            out.append({"seq": seq, "text": comment["text"], "user": comment["user"], "reports": n, "reasons": reasons})
        return out

    async def mute(self, room: str, user: str, seconds: int, escalate: bool) -> dict[str, Any]:
        """Mute `user` for `seconds` (0 unmutes, -1 forever) or, escalating, for the next
        step of the ladder: {until (ms, -1 forever, 0 unmuted), step (0: no escalation)}."""
        until, step = await self.broker.mute_step(room, user, None if escalate else seconds, self.cfg.mute_ladder_s)
        return {"until": until, "step": step}
