"""Live sessions in Redis: start, end, figures (counted by the room's own scripts: lib_session.lua)."""

from __future__ import annotations

from typing import Any

from liveroom.broker import keys as K
from liveroom.broker.base import SessionFigures
from liveroom.broker.expiry_ops import ExpiryOps
from liveroom.broker.topology import bounded


class SessionsOps(ExpiryOps):
    # -- live sessions ---------------------------------------------------------------------

    async def live_start(self, room: str, body: bytes, session: str, started_at: int) -> tuple[int, str, int]:
        """(seq, session id, started_at): seq 0 when a session was live already (its id and
        start). The room goes into its shard's idle index first (a cluster's index is in
        another slot than the room): no live session can exist unindexed."""
        await bounded(self._cmd(room).zadd(K.SESSIONS_LIVE, {room: started_at}), self._timeout)
        seq, sid, at = await self._run(self.calls.live_start(room, body, session, started_at))
        return int(seq), sid.decode(), int(at)

    async def live_end(
        self, room: str, body: bytes, session: str, ended_at: int, retention_ms: int, idle_ms: int = 0
    ) -> tuple[int, int]:
        """(seq, ended_at): seq 0 when it had ended already, -1 no such session, -2 not idle."""
        seq, at = await self._run(self.calls.live_end(room, body, session, ended_at, retention_ms, idle_ms))
        if int(seq) > 0:
            await self.mark_idle(room)  # ended now: the room may be over
        return int(seq), int(at)

    async def live_now(self, room: str) -> tuple[str, int] | None:
        """(session id, started_at) of the room's live session, or None."""
        sid, at = await bounded(self._cmd(room).hmget(K.room_keys(room).meta, ["live", "live_at"]), self._timeout)
        return (sid.decode(), int(at or 0)) if sid else None

    async def session_read(self, room: str, session: str) -> SessionFigures | None:
        flat, viewers, live = await self._run(self.calls.session_read(room, session))
        if not flat:
            return None
        fields = {}
        for name, value in zip(flat[::2], flat[1::2]):
            try:
                fields[name.decode()] = int(value)
            except ValueError:
                continue  # the id
        return SessionFigures(session, bool(live), fields, int(viewers))

    async def sessions(self, room: str, count: int) -> list[tuple[str, int]]:
        """(id, started_at) of the room's sessions, newest first."""
        got = await bounded(
            self._cmd(room).zrevrange(K.room_keys(room).sessions, 0, count - 1, withscores=True), self._timeout
        )
        return [(m.decode(), int(score)) for m, score in got]

    async def live_rooms(self, registry: Any, count: int) -> list[tuple[str, int]]:
        """(room, ms indexed) of the registry's rooms that may have a live session."""
        got = await bounded(registry.zrange(K.SESSIONS_LIVE, 0, count - 1, withscores=True), self._timeout)
        return [(m.decode(), int(score)) for m, score in got]

    async def live_forget(self, room: str) -> None:
        await bounded(self._cmd(room).zrem(K.SESSIONS_LIVE, room), self._timeout)
