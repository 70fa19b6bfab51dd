"""Moderation in Redis: kicks and bans across hubs, the mute ladder, word lists, reports."""

from __future__ import annotations

import json
import secrets
import time

from liveroom.broker import keys as K
from liveroom.broker.runner import ScriptRunner
from liveroom.broker.topology import bounded
from liveroom.errors import MUTED, ReplyError, refusal


class ModerationOps(ScriptRunner):
    # -- moderation ------------------------------------------------------------------------

    async def bye(self, room: str, user: str, reason: str, ban: int | None = None) -> None:
        """Every hub's sockets of `user` in the room get `bye` `reason` ('' sends none);
        `ban`: None leaves the ban as it is, 0 lifts it, else banned until ms (-1 forever)."""
        await self._run(self.calls.room_bye(room, user, reason, "" if ban is None else str(ban)))

    async def admit(self, room: str, user: str) -> tuple[bool, int | None]:
        """(the room exists, the user banned until ms / -1, or None): one read."""
        exists, banned = await self._run(self.calls.room_admit(room, user))
        return bool(exists), int(banned) if banned else None

    async def mute_step(self, room: str, user: str, seconds: int | None, ladder: tuple[int, ...]) -> tuple[int, int]:
        """(muted until ms, -1 forever, 0 unmuted; the ladder step taken, 0 without)."""
        until, step = await self._run(self.calls.room_mute(room, user, seconds, ladder))
        return int(until), int(step)

    async def words(self, room: str) -> tuple[list[str], str, bool, str]:
        raw = await bounded(self._cmd(room).hgetall(K.room_keys(room).words), self._timeout)
        words = json.loads(raw[b"words"]) if b"words" in raw else []
        return words, raw.get(b"action", b"").decode(), raw.get(b"contacts") == b"1", raw.get(b"ver", b"").decode()

    async def words_version(self, room: str) -> str:
        ver = await bounded(self._cmd(room).hget(K.room_keys(room).words, "ver"), self._timeout)
        return ver.decode() if ver else ""

    async def words_put(self, room: str, words: list[str], action: str, contacts: bool) -> str:
        """One HSET (atomic): the list, its action and a new version every hub's cache sees."""
        ver = secrets.token_hex(6)
        fields = {"words": json.dumps(words, ensure_ascii=False), "action": action, "contacts": int(contacts), "ver": ver}
        await bounded(self._cmd(room).hset(K.room_keys(room).words, mapping=fields), self._timeout)
        return ver

    async def report(self, room: str, seq: int, user: str, reason: str, body: bytes) -> int:
        return int(await self._run(self.calls.room_report(room, seq, user, reason, body)))

    async def reports(self, room: str, count: int) -> list[tuple[int, int, bytes | None, dict[str, str]]]:
        k = K.room_keys(room)
        cmd = self._cmd(room)
        top = await bounded(cmd.zrevrange(k.reports, 0, count - 1, withscores=True), self._timeout)
        out = []
        for seq_b, n in top:
            seq = int(seq_b)
            body = await bounded(cmd.hget(k.reported, seq), self._timeout)
            who = await bounded(cmd.hgetall(k.report(seq)), self._timeout)
            out.append((seq, int(n), body, {a.decode(): b.decode() for a, b in who.items()}))
        return out

    async def report_of(self, room: str, seq: int) -> tuple[int, bytes | None] | None:
        k = K.room_keys(room)
        cmd = self._cmd(room)
        n = await bounded(cmd.zscore(k.reports, seq), self._timeout)
        if n is None:
            return None
        return int(n), await bounded(cmd.hget(k.reported, seq), self._timeout)

    async def report_close(self, room: str, seq: int) -> bool:
        """Forget a comment's reports (resolved); False when it had none."""
        k = K.room_keys(room)
        cmd = self._cmd(room)
        gone = await bounded(cmd.zrem(k.reports, seq), self._timeout)
        await bounded(cmd.delete(k.report(seq)), self._timeout)
        await bounded(cmd.hdel(k.reported, seq), self._timeout)
        return bool(gone)


def muted_refusal(until_ms: int) -> ReplyError:
    """`muted`, saying how long is left: "muted for another 3600 s (until <ms>)", or "muted
    for good"."""
    if until_ms < 0:
        return refusal(MUTED, "for good")
    left = max(1, -(-(until_ms - int(time.time() * 1000)) // 1000))
    return refusal(MUTED, f"for another {left} s (until {until_ms})")
