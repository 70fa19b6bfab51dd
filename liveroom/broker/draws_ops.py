"""Lucky draws in Redis: start, entry, the claimed close, the stored result (draw_*.lua)."""

from __future__ import annotations

from typing import Any

import msgpack

from liveroom.broker import keys as K
from liveroom.broker.base import DrawClaim, DrawRecord
from liveroom.broker.calls import Idem
from liveroom.broker.expiry_ops import ExpiryOps
from liveroom.broker.topology import bounded
from liveroom.errors import DRAW_OPEN, refusal


class DrawsOps(ExpiryOps):
    # -- lucky draws -----------------------------------------------------------------------

    async def draw_start(
        self, room: str, draw: str, body: bytes, info: bytes, seed_hex: str, keyword: str, ends_at: int, exclude: bool,
        idem: Idem = None,
    ) -> tuple[int, str, str]:  # fmt: skip
        """(seq, epoch, draw id); refused `draw_open`. Indexed as due first (a cluster's index
        is in another slot than the room: no script can write both), unindexed if refused or
        if a repeated idempotency key `idem` (user, key) answered the first call's draw."""
        member = f"{room} {draw}"
        await bounded(self._cmd(room).zadd(K.DRAWS_DUE, {member: ends_at}), self._timeout)
        out = await self._run(self.calls.draw_start(room, body, draw, info, seed_hex, keyword, ends_at, exclude, idem))
        if int(out[0]) < 0:
            await bounded(self._cmd(room).zrem(K.DRAWS_DUE, member), self._timeout)
            raise refusal(DRAW_OPEN)
        first = out[2].decode()
        if first != draw:
            await bounded(self._cmd(room).zrem(K.DRAWS_DUE, member), self._timeout)
        return int(out[0]), out[1].decode(), first

    async def draw_join(self, room: str, draw: str, user: str, name: str) -> bool:
        """True when the user entered now, False when already in; refusals raised."""
        out = await self._run(self.calls.draw_join(room, draw, user, name))
        if out[0] != b"ok":
            raise refusal(out[1].decode(), out[2].decode())
        return bool(int(out[1]))

    async def draw_claim(self, room: str, draw: str, ttl_ms: int) -> DrawClaim:
        out = await self._run(self.calls.draw_claim(room, draw, ttl_ms))
        if out[0] != b"ok":
            return DrawClaim(out[0].decode())
        return DrawClaim("ok", out[1].decode(), out[2] == b"1", out[3].decode() if len(out) > 3 else "")

    async def draw_store_pool(self, room: str, draw: str, pool: list[str]) -> None:
        """An online draw's sorted pool as this hub's LIST, 10,000 per RPUSH (in order)."""
        key = K.room_keys(room).online_pool(draw, self.hub_id)
        await bounded(self._cmd(room).unlink(key), self._timeout)
        for i in range(0, len(pool), 10_000):
            await bounded(self._cmd(room).rpush(key, *pool[i : i + 10_000]), self._timeout)

    async def draw_drop_pool(self, room: str, draw: str) -> None:
        await bounded(self._cmd(room).unlink(K.room_keys(room).online_pool(draw, self.hub_id)), self._timeout)

    async def draw_pool_page(self, room: str, draw: str, start: int, count: int) -> list[str]:
        """A closed online draw's entrants by position (LRANGE: O(start + count))."""
        ids = await bounded(
            self._cmd(room).lrange(K.room_keys(room).draw_entrants(draw), start, start + count - 1), self._timeout
        )
        return [i.decode() for i in ids]

    async def draw_won(self, room: str) -> set[str]:
        """Everyone who has won a draw in the room (SSCAN, 10,000 per step)."""
        out: set[str] = set()
        cursor = 0
        while True:
            cursor, found = await bounded(self._cmd(room).sscan(K.room_keys(room).won, cursor, count=10_000), self._timeout)
            out.update(u.decode() for u in found)
            if int(cursor) == 0:
                return out

    def _entrants_key(self, room: str, closed_draw: str | None) -> str:
        k = K.room_keys(room)
        return k.draw_entrants(closed_draw) if closed_draw else k.entrants

    async def draw_entrants(self, room: str, closed_draw: str | None, after: str, count: int) -> list[str]:
        """Up to `count` entrants after `after` ("" = from the start), in code point order
        (ZRANGEBYLEX from an exclusive bound: O(log N + count), never a whole big set)."""
        lo = "(" + after if after else "-"
        ids = await bounded(
            self._cmd(room).zrangebylex(self._entrants_key(room, closed_draw), lo, "+", start=0, num=count),
            self._timeout,
        )
        return [i.decode() for i in ids]

    async def draw_entrant_count(self, room: str, closed_draw: str | None) -> int:
        return int(await bounded(self._cmd(room).zcard(self._entrants_key(room, closed_draw)), self._timeout))

    async def presence_scan(self, room: str, cursor: int, count: int) -> tuple[int, list[str]]:
        """One HSCAN step over the room's presence (users present on any hub)."""
        nxt, found = await bounded(self._cmd(room).hscan(K.room_keys(room).ref, cursor, count=count), self._timeout)
        return int(nxt), [u.decode() for u in found]

    async def draw_result(
        self, room: str, draw: str, body: bytes, result: bytes, counted: int, online: bool = False
    ) -> int:
        """The draw_result event's seq; -1 when a result was already stored (another hub
        closed it), -2 when the entrants changed since they were read."""
        seq, _ = await self._run(self.calls.draw_result(room, draw, body, result, counted, online))
        return int(seq)

    async def draw_mark_won(self, room: str, users: list[str]) -> None:
        """Add winners to the room's `won` set, 1,000 per SADD (idempotent)."""
        for i in range(0, len(users), 1000):
            await bounded(self._cmd(room).sadd(K.room_keys(room).won, *users[i : i + 1000]), self._timeout)

    async def draw_names(self, room: str, users: list[str]) -> list[str | None]:
        out: list[str | None] = []
        for i in range(0, len(users), 1000):
            got = await bounded(self._cmd(room).hmget(K.room_keys(room).names, users[i : i + 1000]), self._timeout)
            out.extend(g.decode() if g is not None else None for g in got)
        return out

    async def draw_record(self, room: str, draw: str) -> DrawRecord | None:
        fields = ["info", "status", "seed", "result", "sess"]
        got = await bounded(
            self._cmd(room).hmget(K.room_keys(room).draws, [f"{draw}:{f}" for f in fields]), self._timeout
        )
        info, status, seed, result, sess = got
        if info is None:
            return None
        return DrawRecord(
            id=draw,
            info=msgpack.unpackb(info),
            status=status.decode(),
            seed_hex=seed.decode(),
            result=msgpack.unpackb(result) if result else None,
            session=sess.decode() if sess else "",
        )

    async def due_draws(self, registry: Any, now_ms: int, count: int) -> list[tuple[str, str]]:
        """(room, draw) pairs of the registry whose ends_at has passed."""
        members = await bounded(registry.zrangebyscore(K.DRAWS_DUE, "-inf", now_ms, start=0, num=count), self._timeout)
        out = []
        for m in members:
            room, _, draw = m.decode().partition(" ")
            out.append((room, draw))
        return out

    async def draw_done(self, room: str, draw: str) -> None:
        await bounded(self._cmd(room).zrem(K.DRAWS_DUE, f"{room} {draw}"), self._timeout)
        await self.mark_idle(room)  # the draw is settled: the room may be over

