"""Flash sales and coupon grabs (a coupon is a sale with price 0): the rules around the
Lua scripts that hold the stock. Python never reads, changes and writes stock: every change
is one script call, so thousands of simultaneous taps cannot oversell.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from typing import Any

import msgpack

from liveroom.broker.base import Broker, SaleRecord, buy_field
from liveroom.config import Config
from liveroom.core.session import Session
from liveroom.core.soldout import SoldOutBook
from liveroom.core.tasks import Background
from liveroom.errors import (
    BAD_FIELD,
    FORBIDDEN,
    NO_SUCH_ORDER,
    NO_SUCH_SALE,
    SOLD_OUT,
    ReplyError,
    Unavailable,
    refusal,
)
from liveroom.protocol import events
from liveroom.protocol import frames as F

log = logging.getLogger(__name__)
ORDER_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,160}\Z")


def now_ms() -> int:
    return int(time.time() * 1000)


def order_prefix(room: str, sale: str) -> str:
    """Order ids name their room, so the HTTP API finds an order from its id alone:
    o<len(room)>-<room>-<sale>-<n>; room ids may contain '-', hence the length."""
    return f"o{len(room)}-{room}-{sale}-"


def parse_order_id(order: str) -> tuple[str, str]:
    """(room, sale) of an order id, or ReplyError(no_such_order)."""
    try:
        if not order.startswith("o") or not ORDER_RE.match(order):
            raise ValueError
        dash = order.index("-")
        n = int(order[1:dash])
        room = order[dash + 1 : dash + 1 + n]
        rest = order[dash + 1 + n :]
        if len(room) != n or not F.ID_RE.match(room) or not rest.startswith("-"):
            raise ValueError  # an empty or bad room must not skip the room's checks
        sale, num = rest[1:].rsplit("-", 1)
        int(num)
        return room, sale
    except ValueError:
        raise ReplyError(NO_SUCH_ORDER, "no such order") from None


def sale_view(sale: SaleRecord, now: int | None = None) -> dict[str, Any]:
    """A sale as PROTOCOL.md shows it; `status` says whether it is on at `now`."""
    info = sale.info
    status = sale.status
    now = now_ms() if now is None else now
    if status == "open":
        if info["starts_at"] and now < info["starts_at"]:
            status = "scheduled"
        elif info["ends_at"] and now >= info["ends_at"]:
            status = "ended"
    return {
        "id": sale.id,
        "sku": info["sku"],
        "title": info["title"],
        "price": info["price"],
        "stock": sale.stock,
        "initial": info["stock"],
        "limit": info["limit"],
        "starts_at": info["starts_at"],
        "ends_at": info["ends_at"],
        "status": status,
    }


def live_sales(sales: list[SaleRecord]) -> list[dict[str, Any]]:
    """Sales a joining viewer should see: not closed and not over."""
    now = now_ms()
    views = (sale_view(s, now) for s in sales)
    return [v for v in views if v["status"] in ("scheduled", "open", "sold_out")]


class Sales:
    def __init__(self, cfg: Config, broker: Broker, sold_out: SoldOutBook | None = None) -> None:
        self.cfg = cfg
        self.broker = broker
        self._pay_window_ms = int(cfg.sales.pay_window_s * 1000)
        # the sold-out fast path (core/soldout.py); the hub reopens it on `stock`/`sale` events
        self.sold_out = sold_out if sold_out is not None else SoldOutBook()
        self._background = Background()

    async def create(self, s: Session, op: F.SaleCreate) -> dict[str, Any]:
        now = now_ms()
        if op.ends_at and op.ends_at <= max(op.starts_at, now):
            raise ReplyError(BAD_FIELD, "ends_at: must be after starts_at and in the future")
        sale = "s" + secrets.token_hex(5)
        info = {
            "sku": op.sku,
            "title": op.title,
            "price": op.price,
            "stock": op.stock,
            "limit": op.limit,
            "starts_at": op.starts_at,
            "ends_at": op.ends_at,
        }
        view = sale_view(SaleRecord(sale, info, op.stock, "open"), now)
        seq, _ = await self.broker.sale_create(s.room, sale, msgpack.packb(info), op.stock, events.pack(events.sale(view)))
        return {"sale": sale, "seq": seq}

    async def close(self, s: Session, op: F.SaleClose) -> dict[str, Any]:
        # the event is built here from the sale as it is now; the script sets its status
        # and its remaining stock, which only Redis knows when it closes the sale
        record = next((r for r in await self.broker.sales(s.room) if r.id == op.sale), None)
        if record is None:
            raise ReplyError(NO_SUCH_SALE, "no such sale in this room")
        view = sale_view(SaleRecord(record.id, record.info, record.stock, "closed"))
        return {"seq": await self.broker.sale_close(s.room, op.sale, events.pack(events.sale(view)))}

    async def buy(self, s: Session, op: F.Buy) -> dict[str, Any]:
        if s.identity.anonymous:
            raise ReplyError(FORBIDDEN, "sign in to buy")
        if not op.key:
            raise ReplyError(BAD_FIELD, "key: required (a client idempotency key)")
        if self.sold_out_here(s, op):
            raise refusal(SOLD_OUT)  # known sold out and a key Redis never answered: no Redis call
        try:
            res = await self.broker.sale_buy(
                s.room, op.sale, s.identity.id, op.qty, op.key, order_prefix(s.room, op.sale), self._pay_window_ms,
                events.pack(events.sold_out(op.sale)),
            )
        except ReplyError as exc:
            if exc.code == SOLD_OUT:
                gen = self.sold_out.refused(s.room, op.sale)
                if gen is not None:
                    self._background.spawn(self._learn_sold_out(s.room, op.sale, gen))
            raise
        order, remaining, _first = res
        return {"order": order, "remaining": remaining}

    def sold_out_here(self, s: Session, op: F.Buy) -> bool:
        """The fast path's answer: True when this hub answers the buy `sold_out` itself."""
        if s.identity.anonymous or not op.key:
            return False  # refused otherwise, by buy()
        return self.sold_out.answers(s.room, op.sale, buy_field(s.identity.id, op.key), op.qty, now_ms())

    async def _learn_sold_out(self, room: str, sale: str, gen: int) -> None:
        """Read the sale, then every key Redis answered, for the fast path (core/soldout.py:
        the sale first, so that every key answered before it was seen sold out is in the set)."""
        record: SaleRecord | None = None
        keys: set[str] | None = None
        try:
            record = next((r for r in await self.broker.sales(room) if r.id == sale), None)
            sold_out = record is not None and record.stock <= 0 and record.status != "closed"
            if sold_out:
                keys = await self.broker.answered_keys(room, sale, self.sold_out.max_keys)
        finally:  # a failed read leaves the path closed; the next sold_out answer tries again
            info = record.info if record is not None else {}
            on = self.sold_out.loaded(
                room, sale, gen, record is not None and keys is not None, int(info.get("limit", 0)),
                int(info.get("ends_at", 0)), keys,
            )  # fmt: skip
        if on:
            log.info("room %s: sale %s sold out, answered here from now (%d keys answered before)", room, sale, len(keys or ()))

    async def sale(self, room: str, sale: str) -> dict[str, Any]:
        record = next((r for r in await self.broker.sales(room) if r.id == sale), None)
        if record is None:
            raise ReplyError(NO_SUCH_SALE, "no such sale in this room")
        view = sale_view(record)
        held = await self.broker.bought(room, sale)
        view["sold"] = view["initial"] - view["stock"]
        view["buyers"] = len(held)
        return view

    async def order(self, order: str) -> dict[str, Any]:
        room, _ = parse_order_id(order)
        raw = await self.broker.order(room, order)
        if raw is None:
            raise ReplyError(NO_SUCH_ORDER, "no such order")
        data: dict[str, Any] = json.loads(raw)
        return data

    async def confirm(self, order: str) -> dict[str, Any]:
        room, _ = parse_order_id(order)
        await self.broker.order_confirm(room, order)
        return {"order": order, "status": "confirmed"}

    async def cancel(self, order: str) -> dict[str, Any]:
        room, sale = parse_order_id(order)
        await self.broker.order_release(room, order, sale, "cancelled")
        return {"order": order, "status": "cancelled"}

    # -- unpaid orders ---------------------------------------------------------------------

    async def expire_due(self, room: str) -> int:
        """Expire every order of `room` whose pay window has passed; returns how many."""
        n = 0
        for order in await self.broker.due_orders(room, now_ms()):
            try:  # each order on its own: one bad entry never holds up the others
                _, sale = parse_order_id(order)
                await self.broker.order_release(room, order, sale, "expired")
            except Unavailable:
                raise
            except ReplyError:  # confirmed or cancelled meanwhile, or not an order id of ours
                continue
            n += 1
        return n

    async def _expire_room(self, room: str) -> None:
        """One room of a reaper round: its failure is logged, the round goes on."""
        try:
            expired = await self.expire_due(room)
        except Unavailable:
            raise  # the shard is gone: the rest of this registry's round would be too
        except Exception:
            log.exception("order reaper: room %r failed", room)
            return
        if expired:
            log.info("room %s: %d unpaid orders expired", room, expired)

    async def reaper(self) -> None:
        """Every hub runs this; a short lock per shard lets one of them do each round."""
        interval = self.cfg.sales.reaper_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for registry in self.broker.registries():
                try:
                    if not await self.broker.reaper_lock(registry, max(int(interval * 900), 100)):
                        continue
                    for room in await self.broker.sale_rooms(registry):
                        await self._expire_room(room)
                except Unavailable as exc:
                    log.warning("order reaper: %s", exc)
                except Exception:
                    log.exception("order reaper failed")

