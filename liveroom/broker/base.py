"""What core needs of a broker, and what a broker hands to core: the contract between the
room logic and Redis. Nothing here imports redis: core/ and tests can use these types
without a Redis client, and a broker is anything that has these methods.

Messages arrive through the handler core passes to `Broker.start`; results are Python
values (ints, strings, decoded maps), never raw Redis hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Union


@dataclass(frozen=True, slots=True)
class DurableMsg:
    """A durable room event as published: seq and epoch assigned by Redis, body msgpack."""

    seq: int
    epoch: str
    body: bytes  # msgpack event without its seq


@dataclass(frozen=True, slots=True)
class LikesMsg:
    total: int


@dataclass(frozen=True, slots=True)
class StockMsg:
    sale: str
    remaining: int


@dataclass(frozen=True, slots=True)
class ByeMsg:
    """A control message: every hub closes its sockets of `user` in the room with `bye`
    `reason` (kicked, banned)."""

    user: str
    reason: str


BrokerMsg = Union[DurableMsg, LikesMsg, StockMsg, ByeMsg]
OnMessage = Callable[[str, BrokerMsg], None]
OnReconnect = Callable[[list[str]], None]


@dataclass(frozen=True, slots=True)
class BrokerEvents:
    """What core hands the broker when it starts: where messages go, and whom to tell that
    rooms may have missed messages (a pub/sub reconnect or a slot move)."""

    on_message: OnMessage
    on_reconnect: OnReconnect


@dataclass(frozen=True, slots=True)
class Beat:
    """What a hub's presence beat in a room learns."""

    online: int
    lost: bool  # this hub's users are missing from Redis: register them again
    dead: list[str]  # hubs whose heartbeat expired: reap their users
    draws: list[str]  # milestones the online count crossed that start a draw


@dataclass(frozen=True, slots=True)
class SaleRecord:
    """One sale as the room's sales hash holds it."""

    id: str
    info: dict[str, Any]  # sku, title, price, stock (initial), limit, starts_at, ends_at
    stock: int  # what remains
    status: str  # open | sold_out | closed


@dataclass(frozen=True, slots=True)
class RoomState:
    seq: int
    epoch: str
    first_seq: int  # oldest seq still in history (0: none)
    online: int
    likes: int
    comments: int
    peak: int
    pinned: Any  # the pinned product (a map), or None
    sales: list[SaleRecord]
    orders_confirmed: int = 0
    orders_pending: int = 0
    gmv_confirmed: int = 0
    gmv_pending: int = 0
    draw: dict[str, Any] | None = None  # the open draw's public map (no seed), or None
    live: dict[str, Any] | None = None  # the live session {session, started_at}, or None


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """One live session as session_read.lua reads it (lua/lib_session.lua's fields)."""

    id: str
    live: bool
    fields: dict[str, int]  # totals, and the timeline as `<minute ms>:<figure>`
    viewers: int  # distinct users (HyperLogLog estimate)


@dataclass(frozen=True, slots=True)
class DrawClaim:
    """draw_claim.lua's answer: `status` ok (this hub closes it; seed and exclude set),
    gone, closed, early or busy."""

    status: str
    seed_hex: str = ""
    exclude: bool = False
    session: str = ""  # the live session the draw started in ("" none): exclude_winners' scope


@dataclass(frozen=True, slots=True)
class DrawRecord:
    """One draw as the room's draws hash holds it."""

    id: str
    info: dict[str, Any]  # the public map: id, prize, winners, mode, keyword, ends_at, commit
    status: str  # open | closing | closed
    seed_hex: str
    result: dict[str, Any] | None  # winners [{id, name}], entrants (count), seed; None before the close
    session: str = ""  # the live session the draw started in ("" none)


def buy_field(user: str, key: str) -> str:
    """A buy's (user, key) pair as the sale's idempotency hash names it (sale_buy.lua)."""
    return f"{len(user)}:{user}{key}"


class Broker(Protocol):
    """The room operations core calls; every one raises `Unavailable` when Redis does not
    answer in time and a `ReplyError` with a PROTOCOL.md code when a script refuses
    (errors.refusal: one message per code)."""

    hub_id: str

    async def start(self, events: BrokerEvents) -> None: ...
    async def close(self) -> None: ...
    async def subscribe(self, room: str) -> None: ...
    async def unsubscribe(self, room: str) -> None: ...
    async def state(self, room: str, create: bool = True) -> RoomState: ...
    # rooms that exist on purpose (PUT /api/rooms/{room}); one read, no write
    async def room_exists(self, room: str) -> bool: ...
    async def room_put(self, room: str, fields: dict[str, str], by: str, now_ms: int) -> bool: ...
    async def room_info(self, room: str) -> dict[str, str]: ...
    async def history(self, room: str, after_seq: int, count: int) -> list[tuple[int, bytes]]: ...
    async def publish_comment(
        self, room: str, body: bytes, user: str, rate: float, burst: int, norm: str = "", name: str = ""
    ) -> tuple[int, str]: ...
    async def publish_event(self, room: str, body: bytes, meta_field: str = "", value: bytes = b"") -> tuple[int, str]: ...
    async def add_likes(self, room: str, n: int) -> tuple[int, list[str]]: ...
    async def mute(self, room: str, user: str, until_ms: int | None) -> None: ...
    # moderation: send a user away on every hub (ByeMsg), keep or lift a ban; what a
    # handshake needs (room exists, the user's ban) in one read
    async def bye(self, room: str, user: str, reason: str, ban: int | None = None) -> None: ...
    async def admit(self, room: str, user: str) -> tuple[bool, int | None]: ...
    # mute with the escalation ladder (seconds None: the next step): (until ms, step)
    async def mute_step(self, room: str, user: str, seconds: int | None, ladder: tuple[int, ...]) -> tuple[int, int]: ...
    # the room's word filter: (words, action, contacts, version); put returns the new version
    async def words(self, room: str) -> tuple[list[str], str, bool, str]: ...
    async def words_version(self, room: str) -> str: ...
    async def words_put(self, room: str, words: list[str], action: str, contacts: bool) -> str: ...
    # reports: one per user per comment (body: the comment as published); the count
    async def report(self, room: str, seq: int, user: str, reason: str, body: bytes) -> int: ...
    # most reported first: (seq, count, comment body, {user: reason})
    async def reports(self, room: str, count: int) -> list[tuple[int, int, bytes | None, dict[str, str]]]: ...
    async def report_close(self, room: str, seq: int) -> bool: ...
    # one reported comment: (count, comment body), or None when it has no reports
    async def report_of(self, room: str, seq: int) -> tuple[int, bytes | None] | None: ...
    async def presence_sync(
        self, room: str, arrived: list[str], gone: list[str], ttl_ms: int, names: dict[str, str] | None = None
    ) -> int: ...
    async def presence_beat(self, room: str, ttl_ms: int, expect: int = -1) -> Beat: ...
    async def presence_reap(self, room: str, hub_id: str) -> int: ...
    # milestones (core/milestones.py): records as stored, decoded
    async def milestone_set(self, room: str, milestone: str, record: bytes) -> None: ...
    async def milestone_remove(self, room: str, milestone: str) -> bool: ...
    async def milestones(self, room: str) -> dict[str, dict[str, Any]]: ...

    # flash sales (core/sales.py)
    async def sale_create(self, room: str, sale: str, info: bytes, stock: int, body: bytes) -> tuple[int, str]: ...
    async def sale_close(self, room: str, sale: str, body: bytes) -> int: ...
    async def sale_buy(
        self, room: str, sale: str, user: str, qty: int, key: str, order_prefix: str, pay_window_ms: int,
        sold_out_body: bytes,
    ) -> tuple[str, int, bool]: ...
    async def order_release(self, room: str, order: str, sale: str, status: str) -> None: ...
    async def order_confirm(self, room: str, order: str) -> None: ...
    async def order(self, room: str, order: str) -> bytes | None: ...
    async def sales(self, room: str) -> list[SaleRecord]: ...
    async def bought(self, room: str, sale: str) -> dict[bytes, bytes]: ...
    async def answered_keys(self, room: str, sale: str, limit: int) -> set[str] | None: ...
    async def due_orders(self, room: str, now_ms: int, count: int = 500) -> list[str]: ...
    def registries(self) -> list[Any]: ...
    async def sale_rooms(self, registry: Any) -> list[str]: ...
    async def reaper_lock(self, registry: Any, ttl_ms: int) -> bool: ...

    # lucky draws (core/draws.py)
    async def draw_start(
        self, room: str, draw: str, body: bytes, info: bytes, seed_hex: str, keyword: str, ends_at: int, exclude: bool
    ) -> tuple[int, str]: ...
    async def draw_join(self, room: str, draw: str, user: str, name: str) -> bool: ...
    async def draw_claim(self, room: str, draw: str, ttl_ms: int) -> DrawClaim: ...
    async def draw_store_pool(self, room: str, draw: str, pool: list[str]) -> None: ...
    async def draw_drop_pool(self, room: str, draw: str) -> None: ...
    async def draw_pool_page(self, room: str, draw: str, start: int, count: int) -> list[str]: ...
    async def draw_won(self, room: str) -> set[str]: ...
    async def draw_entrants(self, room: str, closed_draw: str | None, after: str, count: int) -> list[str]: ...
    async def draw_entrant_count(self, room: str, closed_draw: str | None) -> int: ...
    async def presence_scan(self, room: str, cursor: int, count: int) -> tuple[int, list[str]]: ...
    async def draw_result(
        self, room: str, draw: str, body: bytes, result: bytes, counted: int, online: bool = False
    ) -> int: ...
    async def draw_mark_won(self, room: str, users: list[str]) -> None: ...
    async def draw_names(self, room: str, users: list[str]) -> list[str | None]: ...
    async def draw_record(self, room: str, draw: str) -> DrawRecord | None: ...
    async def due_draws(self, registry: Any, now_ms: int, count: int) -> list[tuple[str, str]]: ...
    async def draw_done(self, room: str, draw: str) -> None: ...

    # live sessions (core/live.py)
    async def live_start(self, room: str, body: bytes, session: str, started_at: int) -> tuple[int, str, int]: ...
    async def live_end(
        self, room: str, body: bytes, session: str, ended_at: int, retention_ms: int, idle_ms: int = 0
    ) -> tuple[int, int]: ...
    async def live_now(self, room: str) -> tuple[str, int] | None: ...
    async def session_read(self, room: str, session: str) -> SessionFigures | None: ...
    async def sessions(self, room: str, count: int) -> list[tuple[str, int]]: ...
    async def live_rooms(self, registry: Any, count: int) -> list[tuple[str, int]]: ...
    async def live_forget(self, room: str) -> None: ...
