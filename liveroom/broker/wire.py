"""What the Lua scripts write, read back as Python values: pub/sub payloads, the room
state read, the sales hash. Pure functions, fed bytes in the tests."""

from __future__ import annotations

import secrets
from typing import Any

import msgpack

from liveroom.broker.base import BrokerMsg, ByeMsg, DurableMsg, LikesMsg, RoomState, SaleRecord, StockMsg


def new_epoch() -> str:
    """A candidate epoch: becomes the room's if it has none (new, or its data was lost)."""
    return secrets.token_hex(4)


def parse_message(data: bytes) -> BrokerMsg | None:
    """A pub/sub payload: "D<seq> <epoch>\\n<body>" (durable event), "L<total>" (likes),
    "S<sale> <remaining>" (stock), "B<reason> <user>" (send a user away: room_bye.lua);
    None for anything else."""
    kind = data[:1]
    if kind == b"D":
        head, sep, body = data.partition(b"\n")
        seq, _, epoch = head[1:].partition(b" ")
        if not sep:
            return None
        return DurableMsg(int(seq), epoch.decode(), body)
    if kind == b"L":
        return LikesMsg(int(data[1:]))
    if kind == b"S":
        sale, _, remaining = data[1:].partition(b" ")
        return StockMsg(sale.decode(), int(remaining))
    if kind == b"B":
        reason, sep, user = data[1:].partition(b" ")
        return ByeMsg(user.decode(), reason.decode()) if sep else None
    return None


def sale_records(fields: dict[bytes, bytes]) -> list[SaleRecord]:
    """The room's sales hash (<sale>:info|stock|status|n) as records, by sale id."""
    out = []
    for key in sorted(fields):
        if key.endswith(b":info"):
            sale = key[:-5]
            out.append(
                SaleRecord(
                    id=sale.decode(),
                    info=msgpack.unpackb(fields[key]),
                    stock=int(fields.get(sale + b":stock", 0)),
                    status=fields.get(sale + b":status", b"closed").decode(),
                )
            )
    return out


def room_state(reply: list[Any]) -> RoomState:
    """room_state.lua's reply: {meta as a flat list, online, first seq in history, sales flat,
    open draw (msgpack) or nil}."""
    flat, online, first, sales = reply[:4]
    draw = reply[4] if len(reply) > 4 else None
    meta = dict(zip(flat[::2], flat[1::2]))
    pinned = meta.get(b"pinned")
    live = meta.get(b"live")
    return RoomState(
        seq=int(meta.get(b"seq", 0)),
        epoch=meta.get(b"epoch", b"").decode(),  # none yet: a room created but never joined
        first_seq=int(first),
        online=int(online),
        likes=int(meta.get(b"likes", 0)),
        comments=int(meta.get(b"comments", 0)),
        peak=int(meta.get(b"peak", 0)),
        pinned=msgpack.unpackb(pinned) if pinned else None,
        sales=sale_records(dict(zip(sales[::2], sales[1::2]))),
        orders_confirmed=int(meta.get(b"orders_confirmed", 0)),
        orders_pending=int(meta.get(b"orders_pending", 0)),
        gmv_confirmed=int(meta.get(b"gmv_confirmed", 0)),
        gmv_pending=int(meta.get(b"gmv_pending", 0)),
        draw=msgpack.unpackb(draw) if draw else None,
        live={"session": live.decode(), "started_at": int(meta.get(b"live_at", 0))} if live else None,
    )
