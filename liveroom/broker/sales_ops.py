"""Flash sales and orders in Redis: every stock change is one script (sale_*.lua, order_*.lua)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from liveroom.broker import keys as K
from liveroom.broker.base import SaleRecord
from liveroom.broker.calls import Idem
from liveroom.broker.expiry_ops import ExpiryOps
from liveroom.broker.topology import bounded
from liveroom.broker.wire import sale_records
from liveroom.errors import NO_SUCH_SALE, ReplyError, refusal

SESSION_ID = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # a session id as core/live.py makes them


class SalesOps(ExpiryOps):
    # -- flash sales -----------------------------------------------------------------------

    def orders_stream(self, room: str) -> str:
        return self.topology.orders_stream(room)

    async def sale_create(
        self, room: str, sale: str, info: bytes, stock: int, body: bytes, idem: Idem = None
    ) -> tuple[int, str, str]:
        """(seq, epoch, sale id): with a repeated idempotency key `idem` (user, key), the
        first call's, and nothing is created."""
        # indexed first: the order reaper must know every sale that can take an order (a
        # replayed create leaves an entry for a sale id never created: the reaper drops it
        # after SALE_GRACE_MS)
        await bounded(self._cmd(room).zadd(K.ORDERS_DUE, {f"{room} {sale}": int(time.time() * 1000)}), self._timeout)
        seq, epoch, sid = await self._run(self.calls.sale_create(room, sale, info, stock, body, idem))
        return int(seq), epoch.decode(), sid.decode()

    async def sale_close(self, room: str, sale: str, body: bytes) -> int:
        """The event's seq; refused `no_such_sale`."""
        seq, _ = await self._run(self.calls.sale_close(room, sale, body))
        if int(seq) < 0:
            raise refusal(NO_SUCH_SALE)
        # the reaper looks at it next round (not a pay window later): it may forget it now
        member = {f"{room} {sale}": int(time.time() * 1000)}
        await bounded(self._cmd(room).zadd(K.ORDERS_DUE, member, xx=True), self._timeout)
        await self.mark_idle(room)
        return int(seq)

    async def sale_buy(
        self, room: str, sale: str, user: str, qty: int, key: str, order_prefix: str, pay_window_ms: int,
        sold_out_body: bytes,
    ) -> tuple[str, int, bool]:
        """(order id, remaining, first time); a refusal is raised with its code."""
        # the answer waits for a replica: an order acked to a buyer survives a failover;
        # one the replica did not have within wait_ms is answered `unavailable` (retry it)
        out = await self._run(
            self.calls.sale_buy(room, sale, user, qty, key, order_prefix, pay_window_ms, sold_out_body),
            self.wait_replicas, self.wait_ms,
        )
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

    async def sale(self, room: str, sale: str) -> SaleRecord | None:
        """One sale, read by its own fields (the sales hash holds every sale the room held)."""
        names = [f"{sale}:{f}".encode() for f in ("info", "stock", "status", "n")]
        got = await bounded(self._cmd(room).hmget(K.room_keys(room).sales, names), self._timeout)
        records = sale_records({k: v for k, v in zip(names, got) if v is not None})
        return records[0] if records else None

    async def sale_listed(self, room: str, sale: str) -> None:
        """A join reads the sale (a sale an older version created, moved by the reaper)."""
        await bounded(self._cmd(room).sadd(K.room_keys(room).sales_open, sale), self._timeout)

    async def sale_over(self, room: str, sale: str) -> None:
        """The sale takes no more buys (past its ends_at): a join stops reading it."""
        await bounded(self._cmd(room).srem(K.room_keys(room).sales_open, sale), self._timeout)

    async def next_pay_deadline(self, room: str) -> int | None:
        """The earliest pay deadline of the room's pending orders (ms), or None."""
        got = await bounded(self._cmd(room).zrange(K.room_keys(room).pending, 0, 0, withscores=True), self._timeout)
        return int(got[0][1]) if got else None

    def registries(self) -> list[Any]:
        """One client per place the shard-wide indexes live (each standalone shard, or the cluster)."""
        return self.topology.registries()

    async def due_sales(self, registry: Any, now_ms: int, count: int) -> list[tuple[str, str, int]]:
        """(room, sale, ms scored) of the registry's ORDERS_DUE entries due by now_ms."""
        got = await bounded(
            registry.zrangebyscore(K.ORDERS_DUE, "-inf", now_ms, start=0, num=count, withscores=True), self._timeout
        )
        out = []
        for member, score in got:
            room, _, sale = member.decode().partition(" ")
            out.append((room, sale, int(score)))
        return out

    async def due_sale_next(self, room: str, sale: str, next_ms: int | None) -> None:
        """Look at the sale's room again at next_ms, or (None) forget the sale: it takes no
        buys and the room holds no pending order."""
        cmd = self._cmd(room)
        member = f"{room} {sale}"
        change = cmd.zrem(K.ORDERS_DUE, member) if next_ms is None else cmd.zadd(K.ORDERS_DUE, {member: next_ms})
        await bounded(change, self._timeout)

    async def legacy_sale_rooms(self, registry: Any) -> list[str]:
        """Rooms an older version listed in SALE_ROOMS (moved into ORDERS_DUE, then dropped)."""
        return [r.decode() for r in await bounded(registry.smembers(K.SALE_ROOMS), self._timeout)]

    async def legacy_sale_rooms_done(self, registry: Any, rooms: list[str]) -> None:
        if rooms:
            await bounded(registry.srem(K.SALE_ROOMS, *rooms), self._timeout)

    async def reaper_lock(self, registry: Any, ttl_ms: int) -> bool:
        return bool(await bounded(registry.set(K.REAPER_LOCK, self.hub_id, nx=True, px=ttl_ms), self._timeout))
