"""Every room event of the wire contract, built in one place.

Python builds each event body here; a Lua script that publishes an event gets the body
prepared (msgpack) and at most fills in a value only Redis knows at that moment (a sale's
remaining stock), so an event's fields cannot drift between Python and Lua.
`FIELDS` is what docs/protocol.md documents (tests/test_events.py holds them together).
Durable events get their `seq` from Redis when published; it is not part of the body.
"""

from __future__ import annotations

from typing import Any

import msgpack

Event = dict[str, Any]

# type -> fields of the event on the wire (besides `type`)
FIELDS: dict[str, frozenset[str]] = {
    "comment": frozenset({"seq", "user", "text", "ts"}),
    "comment_deleted": frozenset({"seq", "comment"}),
    "likes": frozenset({"total"}),
    "online": frozenset({"count"}),
    "pin": frozenset({"seq", "product"}),
    "notice": frozenset({"seq", "text"}),
    "sale": frozenset({"seq", "sale"}),
    "stock": frozenset({"sale", "remaining"}),
    "sold_out": frozenset({"seq", "sale"}),
    "milestone": frozenset({"seq", "kind", "value", "reward"}),
    "draw_started": frozenset({"seq", "draw"}),
    "draw_result": frozenset({"seq", "draw", "winners", "entrants", "seed"}),
    "live": frozenset({"seq", "status", "session", "started_at", "ended_at"}),
}
# type -> fields an event of that type carries only sometimes (docs/protocol.md: "optional")
OPTIONAL: dict[str, frozenset[str]] = {
    "comment": frozenset({"host"}),  # true on the host's own comments (never sampled out)
}
# the `sale` map of `sale` events, welcome.state.sales and GET .../sales/{id}
SALE_FIELDS = frozenset({"id", "sku", "title", "price", "stock", "initial", "limit", "starts_at", "ends_at", "status"})
# the `draw` map of `draw_started` events, welcome.state.draw and GET .../draws/{id}
DRAW_FIELDS = frozenset({"id", "prize", "winners", "mode", "keyword", "ends_at", "commit"})
DURABLE = frozenset(t for t, f in FIELDS.items() if "seq" in f)


def pack(event: Event) -> bytes:
    """A durable event's body as Redis stores and publishes it (without its seq)."""
    body: bytes = msgpack.packb(event)
    return body


def pack_open(event: Event, key: str) -> bytes:
    """A body with `key` last and its value left off, for a script to finish with the one
    value it alone knows (`body .. cmsgpack.pack(value)`). Redis's cmsgpack cannot write a
    nil map value, so a script must not unpack and repack events that may hold one."""
    rest = {k: v for k, v in event.items() if k != key}
    if len(rest) >= 15:
        raise ValueError("pack_open: fixmap events only")
    head = pack(rest)
    tail: bytes = msgpack.packb(key)
    return bytes([0x80 | (len(rest) + 1)]) + head[1:] + tail


def comment(user: dict[str, str], text: str, ts: int) -> Event:
    return {"type": "comment", "user": user, "text": text, "ts": ts}


def comment_deleted(seq: int) -> Event:
    return {"type": "comment_deleted", "comment": seq}


def pin(product: dict[str, Any] | None) -> Event:
    return {"type": "pin", "product": product}


def notice(text: str) -> Event:
    return {"type": "notice", "text": text}


def sale(view: dict[str, Any]) -> Event:
    """`view`: the sale as core/sales.py `sale_view` shows it."""
    return {"type": "sale", "sale": {k: view[k] for k in SALE_FIELDS}}


def sold_out(sale_id: str) -> Event:
    return {"type": "sold_out", "sale": sale_id}


def milestone(kind: str, value: int, reward: str | None) -> Event:
    """`value`: the count crossed (set by lib_milestones.lua when it fires)."""
    return {"type": "milestone", "kind": kind, "value": value, "reward": reward}


def likes(total: int) -> Event:
    return {"type": "likes", "total": total}


def online(count: int) -> Event:
    return {"type": "online", "count": count}


def stock(sale_id: str, remaining: int) -> Event:
    return {"type": "stock", "sale": sale_id, "remaining": remaining}


def draw_started(draw: dict[str, Any]) -> Event:
    """`draw`: the public draw map (never the seed: only its commit)."""
    return {"type": "draw_started", "draw": {k: draw[k] for k in DRAW_FIELDS}}


def draw_result(draw_id: str, winners: list[dict[str, str]], entrants: int, seed_hex: str) -> Event:
    return {"type": "draw_result", "draw": draw_id, "winners": winners, "entrants": entrants, "seed": seed_hex}


def live(status: str, session: str, started_at: int, ended_at: int | None) -> Event:
    """A live session started (`live`, ended_at nil) or ended (`ended`)."""
    return {"type": "live", "status": status, "session": session, "started_at": started_at, "ended_at": ended_at}
