"""Flash sales and orders in Redis: every stock change is one script (sale_*.lua, order_*.lua)."""

from __future__ import annotations

import json
import re
from typing import Any

from liveroom.broker import keys as K
from liveroom.broker.base import SaleRecord
from liveroom.broker.runner import ScriptRunner
from liveroom.broker.topology import bounded
from liveroom.broker.wire import sale_records
from liveroom.errors import NO_SUCH_SALE, ReplyError, refusal

SESSION_ID = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # a session id as core/live.py makes them


class SalesOps(ScriptRunner):
    # -- flash sales -----------------------------------------------------------------------

    def orders_stream(self, room: str) -> str:
        return self.topology.orders_stream(room)

    async def sale_create(self, room: str, sale: str, info: bytes, stock: int, body: bytes) -> tuple[int, str]:
        # registered first: the order reaper must know every room that can hold an order
        await bounded(self._cmd(room).sadd(K.SALE_ROOMS, room), self._timeout)
        seq, epoch = await self._run(self.calls.sale_create(room, sale, info, stock, body))
        return int(seq), epoch.decode()

    async def sale_close(self, room: str, sale: str, body: bytes) -> int:
        """The event's seq; refused `no_such_sale`."""
        seq, _ = await self._run(self.calls.sale_close(room, sale, body))
        if int(seq) < 0:
            raise refusal(NO_SUCH_SALE)
        return int(seq)

    async def sale_buy(
        self, room: str, sale: str, user: str, qty: int, key: str, order_prefix: str, pay_window_ms: int,
        sold_out_body: bytes,
    ) -> tuple[str, int, bool]:
        """(order id, remaining, first time); a refusal is raised with its code."""
        out = await self._run(self.calls.sale_buy(room, sale, user, qty, key, order_prefix, pay_window_ms, sold_out_body))
        if out[0] != b"ok":
            if len(out) > 2:  # a refusal with its own message (numbers out of bounds)
                raise ReplyError(out[1].decode(), out[2].decode())
            raise refusal(out[1].decode())
        return out[1].decode(), int(out[2]), bool(out[3])

    async def order_release(self, room: str, order: str, sale: str, status: str) -> None:
        """Released now; refused `no_such_order`, `closed` (no longer pending) or `not_due`."""
        session = await self._order_session(room, order)
        out = await self._run(self.calls.order_release(room, order, sale, status, session))
        if out[0] != b"ok":
            raise refusal(out[1].decode())

    async def order_confirm(self, room: str, order: str) -> None:
        out = await self._run(self.calls.order_confirm(room, order, await self._order_session(room, order)))
        if out[0] != b"ok":
            raise refusal(out[1].decode())

    async def _order_session(self, room: str, order: str) -> str:
        """The live session an order was placed in ("" none): the script moves its figures
        and must be handed that session's key (an order's session never changes)."""
        raw = await self.order(room, order)
        if raw is None:
            return ""
        try:
            session = json.loads(raw).get("session", "")
        except (ValueError, AttributeError):
            return ""  # the script answers for a record it cannot read
        return session if isinstance(session, str) and SESSION_ID.match(session) else ""

    async def order(self, room: str, order: str) -> bytes | None:
        raw: bytes | None = await bounded(self._cmd(room).hget(K.room_keys(room).orders, order), self._timeout)
        return raw

    async def sales(self, room: str) -> list[SaleRecord]:
        return sale_records(await bounded(self._cmd(room).hgetall(K.room_keys(room).sales), self._timeout))

    async def bought(self, room: str, sale: str) -> dict[bytes, bytes]:
        held: dict[bytes, bytes] = await bounded(self._cmd(room).hgetall(K.room_keys(room).bought(sale)), self._timeout)
        return held

    async def answered_keys(self, room: str, sale: str, limit: int) -> set[str] | None:
        """Every (user, key) field the sale's idempotency hash holds (broker.base.buy_field),
        read in HSCAN steps (no long command on the shard); None above `limit` fields.
        HSCAN returns every field present from the first step to the last."""
        cmd, key, cursor = self._cmd(room), K.room_keys(room).idem(sale), 0
        fields: set[str] = set()
        while True:
            cursor, chunk = await bounded(cmd.hscan(key, cursor, count=5000), self._timeout)
            fields.update(f.decode() for f in chunk)
            if len(fields) > limit:
                return None
            if cursor == 0:
                return fields

    async def due_orders(self, room: str, now_ms: int, count: int = 500) -> list[str]:
        ids = await bounded(
            self._cmd(room).zrangebyscore(K.room_keys(room).pending, "-inf", now_ms, start=0, num=count), self._timeout
        )
        return [i.decode() for i in ids]

    def registries(self) -> list[Any]:
        """One client per place SALE_ROOMS lives (each standalone shard, or the cluster)."""
        return self.topology.registries()

    async def sale_rooms(self, registry: Any) -> list[str]:
        return [r.decode() for r in await bounded(registry.smembers(K.SALE_ROOMS), self._timeout)]

    async def reaper_lock(self, registry: Any, ttl_ms: int) -> bool:
        return bool(await bounded(registry.set(K.REAPER_LOCK, self.hub_id, nx=True, px=ttl_ms), self._timeout))

