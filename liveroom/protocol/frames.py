"""Client ops of PROTOCOL.md as small typed values, checked field by field.

`parse()` turns a decoded map into one of the dataclasses below or raises ReplyError with
`unknown_op` / `bad_field`. Room rules (length limits, rates, roles) live in core/, not here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Union

from liveroom.errors import BAD_FIELD, UNKNOWN_OP, ReplyError
from liveroom.protocol.codec import NonFinite

ID_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # \Z: "$" would let a trailing newline in
MAX_INT = 2**53  # what a JavaScript client can represent exactly
MAX_STR = 10_000  # characters of any one string from a client (fields have their own, lower, limits)
MAX_INPUT_DEPTH = 32  # nesting of a client frame or body; free-form values have json_safe's
MAX_VALUE_DEPTH = 8  # nesting of a free-form value (a pinned product)
MAX_VALUE_BYTES = 4096  # a free-form value, encoded as JSON
# what a sale's numbers may be: every sum the scripts make (price x qty, GMV) stays an exact
# integer in Lua's doubles and in Redis' HINCRBY (sale_buy.lua checks them again)
MAX_PRICE = 10**10  # cents
MAX_STOCK = 10_000_000


def check_str(v: str, field: str, max_len: int = MAX_STR) -> str:
    """`v` if it is valid Unicode text (no lone surrogates: they cannot be encoded as UTF-8,
    so they would fail in Redis, msgpack or json, far from here) of at most max_len
    characters; else `bad_field`."""
    if len(v) > max_len:
        raise ReplyError(BAD_FIELD, f"{field}: longer than {max_len}")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ReplyError(BAD_FIELD, f"{field}: not valid UTF-8 text") from None
    return v


def check_input(value: Any, field: str = "frame", _depth: int = 0) -> None:
    """Every string in a client's frame or body, map keys and nested values included, is
    valid UTF-8 of bounded length; every number finite; nesting bounded. Called once at the
    edge (parse/parse_body), so that nothing a client sends can fail later, e.g. in the
    Redis pipeline where it would fail other users' commands batched with it. (Recursive:
    the depth is bounded; ~1 us for a usual frame.)"""
    if isinstance(value, str):
        if not value.isascii() or len(value) > MAX_STR:
            check_str(value, field)
    elif isinstance(value, dict):
        if _depth >= MAX_INPUT_DEPTH:
            raise ReplyError(BAD_FIELD, f"{field}: nested too deeply")
        for k, item in value.items():
            if isinstance(k, str) and (not k.isascii() or len(k) > MAX_STR):
                check_str(k, field)
            if type(item) is not int:  # the usual field, and nothing to check
                check_input(item, field, _depth + 1)
    elif isinstance(value, list):
        if _depth >= MAX_INPUT_DEPTH:
            raise ReplyError(BAD_FIELD, f"{field}: nested too deeply")
        for item in value:
            check_input(item, field, _depth + 1)
    elif isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        raise ReplyError(BAD_FIELD, f"{field}: numbers must be finite")


def json_safe(value: Any, field: str, *, max_depth: int = MAX_VALUE_DEPTH, max_bytes: int = MAX_VALUE_BYTES) -> Any:
    """`value` if it is JSON-compatible by construction, else `bad_field`: maps with string
    keys only (at every depth), lists, valid UTF-8 strings, finite numbers, integers within
    +-2**53, booleans and nil; at most max_depth deep and max_bytes as JSON. A host's
    free-form value goes to every viewer in both codecs: one that a codec cannot carry
    would fail the room's batch for every viewer, and NaN or a 2**64 breaks browsers."""

    def walk(v: Any, depth: int) -> None:
        if v is None or isinstance(v, bool):
            return
        if isinstance(v, int):
            if not -MAX_INT <= v <= MAX_INT:
                raise ReplyError(BAD_FIELD, f"{field}: integers must be within +-2**53")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ReplyError(BAD_FIELD, f"{field}: numbers must be finite")
        elif isinstance(v, str):
            check_str(v, field, max_bytes)
        elif isinstance(v, (dict, list)):
            if depth >= max_depth:
                raise ReplyError(BAD_FIELD, f"{field}: nested deeper than {max_depth}")
            if isinstance(v, dict):
                for k, item in v.items():
                    if not isinstance(k, str):
                        raise ReplyError(BAD_FIELD, f"{field}: map keys must be strings")
                    check_str(k, field, max_bytes)
                    walk(item, depth + 1)
            else:
                for item in v:
                    walk(item, depth + 1)
        else:
            raise ReplyError(BAD_FIELD, f"{field}: {type(v).__name__} values are not allowed")

    walk(value, 0)
    size = len(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode())
    if size > max_bytes:
        raise ReplyError(BAD_FIELD, f"{field}: larger than {max_bytes} bytes")
    return value


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    key: str = ""  # a client idempotency key: a retry with the same key is answered as the first


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
    key: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    text: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class SaleCreate:
    sku: str
    title: str
    price: int
    stock: int
    limit: int
    starts_at: int
    ends_at: int
    key: str = ""


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
    exclude_winners: bool = False  # users who already won a draw in this room don't enter
    key: str = ""


@dataclass(frozen=True, slots=True)
class Mute:
    user: str
    seconds: int
    escalate: bool = False  # the user's next step on the room's mute ladder (seconds ignored)


@dataclass(frozen=True, slots=True)
class DeleteComment:
    seq: int


@dataclass(frozen=True, slots=True)
class MilestoneSet:
    kind: str  # likes | online
    every: int  # fire at every multiple of this (0: a one-off `value`)
    value: int  # fire once at this count (0: `every`)
    reward: str | None
    draw: dict[str, Any] | None  # draw_start fields (checked): the draw starts when it fires


@dataclass(frozen=True, slots=True)
class MilestoneRemove:
    milestone: str


@dataclass(frozen=True, slots=True)
class Kick:
    user: str


@dataclass(frozen=True, slots=True)
class Ban:
    user: str
    seconds: int  # 0 lifts, -1 forever


@dataclass(frozen=True, slots=True)
class Report:
    seq: int  # the reported comment
    reason: str


@dataclass(frozen=True, slots=True)
class LiveStart:
    pass


@dataclass(frozen=True, slots=True)
class LiveEnd:
    session: str  # "": the live one (the op); the HTTP API names the session it ends


Op = Union[
    Ping, Comment, Like, Buy, JoinDraw, Pin, Notice, SaleCreate, SaleClose, DrawStart, Mute, DeleteComment,
    MilestoneSet, MilestoneRemove, LiveStart, LiveEnd,
    Kick, Ban, Report,  # moderation
]

HOST_OPS: tuple[type, ...] = (
    Pin, Notice, SaleCreate, SaleClose, DrawStart, Mute, DeleteComment, MilestoneSet, MilestoneRemove,
    LiveStart, LiveEnd, Kick, Ban,
)


def _str(m: dict[str, Any], key: str, *, max_len: int = 10_000, required: bool = True, default: str = "") -> str:
    if key not in m or m[key] is None:
        if required:
            raise ReplyError(BAD_FIELD, f"{key}: required")
        return default
    v = m[key]
    if not isinstance(v, str):
        raise ReplyError(BAD_FIELD, f"{key}: must be a string")
    return check_str(v, key, max_len)


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


def _key(m: dict[str, Any]) -> str:
    """The optional client idempotency `key` of an op that publishes ("" none)."""
    return _str(m, "key", max_len=128, required=False)


def _id(m: dict[str, Any], key: str) -> str:
    v = _str(m, key, max_len=64)
    if not ID_RE.match(v):
        raise ReplyError(BAD_FIELD, f"{key}: not a valid id")
    return v


def _product(m: dict[str, Any]) -> dict[str, Any] | None:
    v = m.get("product")
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ReplyError(BAD_FIELD, "product: must be a map with string keys, or nil")
    product: dict[str, Any] = json_safe(v, "product")
    return product


def _ping(m: dict[str, Any]) -> Ping:
    return Ping()


def _comment(m: dict[str, Any]) -> Comment:
    return Comment(_str(m, "text"), _key(m))


def _like(m: dict[str, Any]) -> Like:
    return Like(_int(m, "n", 1, 50, required=False, default=1))


def _buy(m: dict[str, Any]) -> Buy:
    return Buy(_id(m, "sale"), _int(m, "qty", 1, 1_000_000, required=False, default=1), _str(m, "key", max_len=128))


def _join_draw(m: dict[str, Any]) -> JoinDraw:
    return JoinDraw(_id(m, "draw"))


def _pin(m: dict[str, Any]) -> Pin:
    return Pin(_product(m), _key(m))


def _notice(m: dict[str, Any]) -> Notice:
    return Notice(_str(m, "text", max_len=2000), _key(m))


def _sale_create(m: dict[str, Any]) -> SaleCreate:
    op = SaleCreate(
        sku=_str(m, "sku", max_len=128),
        title=_str(m, "title", max_len=256),
        price=_int(m, "price", 0, MAX_PRICE),
        stock=_int(m, "stock", 1, MAX_STOCK),
        limit=_int(m, "limit", 1, MAX_STOCK),
        starts_at=_int(m, "starts_at", 0, MAX_INT, required=False, default=0),
        ends_at=_int(m, "ends_at", 0, MAX_INT, required=False, default=0),
        key=_key(m),
    )
    if op.price * op.limit >= MAX_INT:
        raise ReplyError(BAD_FIELD, "price x limit: must be below 2^53")
    return op


def _live_start(m: dict[str, Any]) -> LiveStart:
    return LiveStart()


def _live_end(m: dict[str, Any]) -> LiveEnd:
    return LiveEnd(_id(m, "session") if m.get("session") is not None else "")


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
        exclude_winners=_flag(m, "exclude_winners"),
        key=_key(m),
    )


def _milestone_set(m: dict[str, Any]) -> MilestoneSet:
    kind = _str(m, "kind", max_len=16)
    if kind not in ("likes", "online"):
        raise ReplyError(BAD_FIELD, "kind: likes or online")
    every = _int(m, "every", 1, MAX_INT, required=False, default=0)
    value = _int(m, "value", 1, MAX_INT, required=False, default=0)
    if (every > 0) == (value > 0):
        raise ReplyError(BAD_FIELD, "every or value: exactly one of them")
    reward = _str(m, "reward", max_len=256, required=False, default="") or None
    draw = m.get("draw")
    if draw is not None:
        if not isinstance(draw, dict):
            raise ReplyError(BAD_FIELD, "draw: the fields of draw_start, or nil")
        _draw_start(draw)  # refused now, not when the milestone fires
        draw = json_safe(draw, "draw")
    return MilestoneSet(kind, every, value, reward, draw)


def _milestone_remove(m: dict[str, Any]) -> MilestoneRemove:
    return MilestoneRemove(_id(m, "milestone"))
def _flag(m: dict[str, Any], key: str) -> bool:
    v = m.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ReplyError(BAD_FIELD, f"{key}: must be true or false")
    return v


def _mute(m: dict[str, Any]) -> Mute:
    escalate = _flag(m, "escalate")
    seconds = _int(m, "seconds", -1, 10 * 365 * 86400, required=not escalate)
    return Mute(_str(m, "user", max_len=128), seconds, escalate)


def _delete_comment(m: dict[str, Any]) -> DeleteComment:
    return DeleteComment(_int(m, "seq", 1, MAX_INT))


def _kick(m: dict[str, Any]) -> Kick:
    return Kick(_str(m, "user", max_len=128))


def _ban(m: dict[str, Any]) -> Ban:
    return Ban(_str(m, "user", max_len=128), _int(m, "seconds", -1, 10 * 365 * 86400))


def _report(m: dict[str, Any]) -> Report:
    return Report(_int(m, "seq", 1, MAX_INT), _str(m, "reason", max_len=200, required=False))


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
    "milestone_set": _milestone_set,
    "milestone_remove": _milestone_remove,
    "mute": _mute,
    "delete_comment": _delete_comment,
    "kick": _kick,
    "ban": _ban,
    "report": _report,
    "live_start": _live_start,
    "live_end": _live_end,
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
    """A client frame as a typed op; `bad_field` / `unknown_op` otherwise."""
    check_input(m)
    t = m.get("t")
    if not isinstance(t, str):
        raise ReplyError(BAD_FIELD, "t: required, a string")
    parser = _PARSERS.get(t)
    if parser is None:
        raise ReplyError(UNKNOWN_OP, f"unknown op {t[:32]!r}")
    return parser(m)


def parse_body(kind: str, body: dict[str, Any]) -> Op:
    """The same checks for a host op arriving over the HTTP API."""
    check_input(body, "body")
    return _PARSERS[kind](body)


def check_id(v: str, field: str) -> str:
    """An id from a URL path or query (sale, draw): `[A-Za-z0-9_.:-]{1,64}` or `bad_field`."""
    if not ID_RE.match(v):
        raise ReplyError(BAD_FIELD, f"{field}: not a valid id")
    return v
