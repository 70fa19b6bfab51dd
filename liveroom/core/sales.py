"""Flash sales and coupon grabs (a coupon is a sale with price 0): the rules around the
Lua scripts that hold the stock. Python never reads, changes and writes stock: every change
is one script call, so thousands of simultaneous taps cannot oversell.
"""

from __future__ import annotations

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
from liveroom.core.tasks import Background, locked_rounds
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
REAP_BATCH = 500  # due sales looked at per round and shard; more wait for the next round
TRIM_EVERY_S = 60.0  # how often a shard's orders stream is trimmed by age
SALE_GRACE_MS = 60_000  # a due entry whose sale is not (yet) there is kept this long


def now_ms() -> int:
    return int(time.time() * 1000)


def order_prefix(room: str, sale: str, tag: str | None = None) -> str:
    """Order ids name their room, so the HTTP API finds an order from its id alone:
    o<len(room)>-<room>-<sale>-<tag>.<n>; room ids may contain '-', hence the length.
    <n> counts the sale's orders in Redis; <tag>, random per buy, keeps ids unique when
    Redis loses that count (a replica promoted before it had the last buys)."""
    return f"o{len(room)}-{room}-{sale}-{secrets.token_hex(4) if tag is None else tag}."


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
        tag, _, count = num.rpartition(".")  # ids made before the tag have none
        if not count.isdigit() or (tag and not all(c in "0123456789abcdef" for c in tag)):
            raise ValueError
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
        self._trimmed: dict[int, float] = {}  # registry -> when its orders stream was last trimmed
        self._migrated: set[int] = set()  # registries whose SALE_ROOMS (older versions) is moved
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
        seq, _, sale = await self.broker.sale_create(
            s.room, sale, msgpack.packb(info), op.stock, events.pack(events.sale(view)), (s.identity.id, op.key)
        )  # a repeated idempotency key: the first call's sale, nothing created
        return {"sale": sale, "seq": seq}

    async def close(self, s: Session, op: F.SaleClose) -> dict[str, Any]:
        # the event is built here from the sale as it is now; the script sets its status
        # and its remaining stock, which only Redis knows when it closes the sale
        record = await self.broker.sale(s.room, op.sale)
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
        record = await self.broker.sale(room, sale)
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

    async def _expire_room(self, room: str) -> bool:
        """One room of a reaper round: its failure is logged, the round goes on; False then."""
        try:
            expired = await self.expire_due(room)
        except Unavailable:
            raise  # the shard is gone: the rest of this registry's round would be too
        except Exception:
            log.exception("order reaper: room %r failed", room)
            return False
        if expired:
            log.info("room %s: %d unpaid orders expired", room, expired)
        return True

    async def _next_look(self, room: str, sale: str, scored: int, now: int) -> int | None:
        """When the reaper must look at this sale's room again: at its earliest pay deadline,
        and while the sale may take buys no later than one pay window from now (no order
        placed after `now` is due before that). None: never (no pending order, no buys)."""
        looks = []
        deadline = await self.broker.next_pay_deadline(room)
        if deadline is not None:
            looks.append(deadline)
        record = await self.broker.sale(room, sale) if sale else None
        if record is None:
            if now - scored < SALE_GRACE_MS:  # indexed just before its script ran: not there yet
                looks.append(now + 1000)
        elif record.status != "closed" and not (record.info["ends_at"] and now >= record.info["ends_at"]):
            looks.append(now + self._pay_window_ms)
        else:
            await self.broker.sale_over(room, sale)  # no more buys: a join stops reading it
        return min(looks) if looks else None

    async def reap_round(self, registry: object) -> int:
        """One round over a registry (a shard, or the cluster): only the sales due now are
        read, so a round costs what is due, not every room that ever sold. How many entries."""
        await self._migrate(registry)
        now = now_ms()
        due = await self.broker.due_sales(registry, now, REAP_BATCH)
        done: set[str] = set()
        for room, sale, scored in due:
            if room not in done and not await self._expire_room(room):
                continue  # looked at again next round
            done.add(room)
            try:
                nxt = await self._next_look(room, sale, scored, now)
                await self.broker.due_sale_next(room, sale, nxt)
                if nxt is None:
                    await self.broker.mark_idle(room)  # its orders are settled: it may be over
            except Unavailable:
                raise
            except Exception:
                log.exception("order reaper: %r %r failed", room, sale)
        await self._trim(registry, sorted(done))
        return len(due)

    async def _trim(self, registry: object, rooms: list[str]) -> None:
        """The orders streams lose what is older than sales.orders_retention_s and every
        consumer group has read and acknowledged: a shard's stream once a minute, a
        cluster room's own stream when its sale is looked at."""
        per_room = self.broker.orders_streams([]) == []  # a cluster: each room has its own
        last = self._trimmed.get(id(registry), 0.0)
        if not per_room and time.monotonic() - last < TRIM_EVERY_S:
            return
        self._trimmed[id(registry)] = time.monotonic()
        oldest = now_ms() - int(self.cfg.sales.orders_retention_s * 1000)
        for stream in self.broker.orders_streams(rooms):
            trimmed = await self.broker.orders_trim(registry, stream, oldest)
            if trimmed:
                log.info("orders stream %s: %d entries past retention trimmed", stream, trimmed)

    async def _migrate(self, registry: object) -> None:
        """Rooms an older version listed in SALE_ROOMS: each of their sales into the due
        index, once, and a join reads those not closed (sales:open)."""
        if id(registry) in self._migrated:
            return
        rooms = await self.broker.legacy_sale_rooms(registry)
        for room in rooms:
            if not F.ID_RE.match(room):
                continue
            for record in await self.broker.sales(room):
                await self.broker.due_sale_next(room, record.id, 0)
                if record.status != "closed":
                    await self.broker.sale_listed(room, record.id)
        await self.broker.legacy_sale_rooms_done(registry, rooms)
        self._migrated.add(id(registry))

    async def reaper(self) -> None:
        """Every hub runs this; a short lock per shard lets one of them do each round."""
        interval = self.cfg.sales.reaper_interval_ms / 1000
        await locked_rounds("order reaper", interval, self.broker.registries, self.broker.reaper_lock, self.reap_round)
