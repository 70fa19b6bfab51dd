"""Client ops of PROTOCOL.md as small typed values, checked field by field.

`parse()` turns a decoded map into one of the dataclasses below or raises ReplyError with
`unknown_op` / `bad_field`. Room rules (length limits, rates, roles) live in core/, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Union

from liveroom.errors import BAD_FIELD, UNKNOWN_OP, ReplyError

ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_INT = 2**53  # what a JavaScript client can represent exactly


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


@dataclass(frozen=True, slots=True)
class Like:
    n: int


@dataclass(frozen=True, slots=True)
class Buy:
    sale: str
    qty: int
    key: str


@dataclass(frozen=True, slots=True)
class JoinDraw:
    draw: str


@dataclass(frozen=True, slots=True)
class Pin:
    product: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Notice:
    text: str


@dataclass(frozen=True, slots=True)
class SaleCreate:
    sku: str
    title: str
    price: int
    stock: int
    limit: int
    starts_at: int
    ends_at: int


@dataclass(frozen=True, slots=True)
class SaleClose:
    sale: str


@dataclass(frozen=True, slots=True)
class DrawStart:
    prize: str
    winners: int
    mode: str
    keyword: str
    duration_s: int


@dataclass(frozen=True, slots=True)
class Mute:
    user: str
    seconds: int


@dataclass(frozen=True, slots=True)
class DeleteComment:
    seq: int


Op = Union[Ping, Comment, Like, Buy, JoinDraw, Pin, Notice, SaleCreate, SaleClose, DrawStart, Mute, DeleteComment]

HOST_OPS: tuple[type, ...] = (Pin, Notice, SaleCreate, SaleClose, DrawStart, Mute, DeleteComment)


def _str(m: dict[str, Any], key: str, *, max_len: int = 10_000, required: bool = True, default: str = "") -> str:
    if key not in m or m[key] is None:
        if required:
            raise ReplyError(BAD_FIELD, f"{key}: required")
        return default
    v = m[key]
    if not isinstance(v, str):
        raise ReplyError(BAD_FIELD, f"{key}: must be a string")
    if len(v) > max_len:
        raise ReplyError(BAD_FIELD, f"{key}: longer than {max_len}")
    return v


def _int(m: dict[str, Any], key: str, lo: int, hi: int, *, required: bool = True, default: int = 0) -> int:
    if key not in m or m[key] is None:
        if required:
            raise ReplyError(BAD_FIELD, f"{key}: required")
        return default
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ReplyError(BAD_FIELD, f"{key}: must be an integer")
    if not lo <= v <= hi:
        raise ReplyError(BAD_FIELD, f"{key}: must be in {lo}..{hi}")
    return v


def _id(m: dict[str, Any], key: str) -> str:
    v = _str(m, key, max_len=64)
    if not ID_RE.match(v):
        raise ReplyError(BAD_FIELD, f"{key}: not a valid id")
    return v


def _product(m: dict[str, Any]) -> dict[str, Any] | None:
    v = m.get("product")
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise ReplyError(BAD_FIELD, "product: must be a map with string keys, or nil")
    return v


def _ping(m: dict[str, Any]) -> Ping:
    return Ping()


def _comment(m: dict[str, Any]) -> Comment:
    return Comment(_str(m, "text"))


def _like(m: dict[str, Any]) -> Like:
    return Like(_int(m, "n", 1, 50, required=False, default=1))


def _buy(m: dict[str, Any]) -> Buy:
    return Buy(_id(m, "sale"), _int(m, "qty", 1, 1_000_000, required=False, default=1), _str(m, "key", max_len=128))


def _join_draw(m: dict[str, Any]) -> JoinDraw:
    return JoinDraw(_id(m, "draw"))


def _pin(m: dict[str, Any]) -> Pin:
    return Pin(_product(m))


def _notice(m: dict[str, Any]) -> Notice:
    return Notice(_str(m, "text", max_len=2000))


def _sale_create(m: dict[str, Any]) -> SaleCreate:
    return SaleCreate(
        sku=_str(m, "sku", max_len=128),
        title=_str(m, "title", max_len=256),
        price=_int(m, "price", 0, MAX_INT),
        stock=_int(m, "stock", 1, 10_000_000),
        limit=_int(m, "limit", 1, 10_000_000),
        starts_at=_int(m, "starts_at", 0, MAX_INT, required=False, default=0),
        ends_at=_int(m, "ends_at", 0, MAX_INT, required=False, default=0),
    )


def _sale_close(m: dict[str, Any]) -> SaleClose:
    return SaleClose(_id(m, "sale"))


def _draw_start(m: dict[str, Any]) -> DrawStart:
    mode = _str(m, "mode", required=False, default="join")
    if mode not in ("join", "keyword", "online"):
        raise ReplyError(BAD_FIELD, "mode: one of join, keyword, online")
    keyword = _str(m, "keyword", max_len=64, required=(mode == "keyword"))
    if mode == "keyword" and not keyword.strip():
        raise ReplyError(BAD_FIELD, "keyword: required for mode keyword")
    return DrawStart(
        prize=_str(m, "prize", max_len=256),
        winners=_int(m, "winners", 1, 10_000),
        mode=mode,
        keyword=keyword,
        duration_s=_int(m, "duration_s", 1, 24 * 3600, required=False, default=60),
    )


def _mute(m: dict[str, Any]) -> Mute:
    return Mute(_str(m, "user", max_len=128), _int(m, "seconds", -1, 10 * 365 * 86400))


def _delete_comment(m: dict[str, Any]) -> DeleteComment:
    return DeleteComment(_int(m, "seq", 1, MAX_INT))


_PARSERS: dict[str, Callable[[dict[str, Any]], Op]] = {
    "ping": _ping,
    "comment": _comment,
    "like": _like,
    "buy": _buy,
    "join_draw": _join_draw,
    "pin": _pin,
    "notice": _notice,
    "sale_create": _sale_create,
    "sale_close": _sale_close,
    "draw_start": _draw_start,
    "mute": _mute,
    "delete_comment": _delete_comment,
}


def frame_id(m: dict[str, Any]) -> int | None:
    """The frame's `id`, or None. A malformed id is `bad_field` (answered as `error`)."""
    v = m.get("id")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not -MAX_INT <= v <= MAX_INT:
        raise ReplyError(BAD_FIELD, "id: must be an integer")
    return v


def parse(m: dict[str, Any]) -> Op:
    t = m.get("t")
    if not isinstance(t, str):
        raise ReplyError(BAD_FIELD, "t: required, a string")
    parser = _PARSERS.get(t)
    if parser is None:
        raise ReplyError(UNKNOWN_OP, f"unknown op {t[:32]!r}")
    return parser(m)


def parse_body(kind: str, body: dict[str, Any]) -> Op:
    """The same checks for a host op arriving over the HTTP API."""
    return _PARSERS[kind](body)
