"""The KEYS and ARGV of every script in liveroom/lua/, in the order its header documents:
one builder per script, so a script and what feeds it are read side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from liveroom.broker import keys as K
from liveroom.broker.base import buy_field
from liveroom.broker.wire import new_epoch

# users per presence_sync call: ~1 ms of script time on a shard
PRESENCE_CHUNK = 1000
# how long the first answer to an op with an idempotency key is kept (lib_idem.lua): a
# client retries after `unavailable` within seconds; ten minutes covers a phone's reconnect
IDEM_TTL_MS = 600_000

# (user id, the client's key) of an op that carries an idempotency key; None: no key
Idem = tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class Call:
    script: str
    room: str
    keys: list[str]
    args: list[Any]


class Calls:
    def __init__(self, pubcmd: str, orders_stream: Callable[[str], str], history_len: int, hub_id: str) -> None:
        self.pubcmd = pubcmd  # PUBLISH, or SPUBLISH on a cluster
        self.orders_stream = orders_stream  # where a room's orders are announced
        self.maxlen = str(history_len)
        self.hub_id = hub_id

    def _durable(self, k: K.RoomKeys, body: bytes) -> list[Any]:
        """lib_publish.lua's arguments, first in every script that publishes an event."""
        return [self.pubcmd, k.channel, body, new_epoch(), self.maxlen]

    @staticmethod
    def _idem(k: K.RoomKeys, op: str, idem: Idem) -> tuple[list[str], list[Any]]:
        """lib_idem.lua's optional last KEYS entry and last ARGV (its TTL): none without a key."""
        if idem is None or not idem[1]:
            return [], []
        return [k.op_key(op, *idem)], [IDEM_TTL_MS]

    def room_state(self, room: str, create: bool = True) -> Call:
        k = K.room_keys(room)
        return Call("room_state", room, [k.meta, k.ref, k.hist, k.sales, k.draws, k.sales_open], [new_epoch() if create else ""])

    def room_renew(self, room: str, had: str, keep_from: int) -> Call:
        k = K.room_keys(room)
        return Call("room_renew", room, [k.meta, k.hist], [had, new_epoch(), keep_from])

    def room_comment(
        self, room: str, body: bytes, user: str, rate: float, burst: int, norm: str = "", name: str = "",
        key: str = "",
    ) -> Call:  # fmt: skip
        """`norm`: the comment normalised for keyword draws ("" skips the draw check);
        `key`: the client's idempotency key ("" none)."""
        k = K.room_keys(room)
        ik, ttl = self._idem(k, "comment", (user, key))
        return Call(
            "room_comment", room, [k.meta, k.hist, k.mutes, k.rate(user), k.draws, k.entrants, k.names, k.won, k.live, *ik],
            [*self._durable(k, body), user, rate, burst, norm, name, *ttl],
        )  # fmt: skip

    def room_publish(self, room: str, body: bytes, meta_field: str, value: bytes, op: str = "", idem: Idem = None) -> Call:
        """`op`, `idem`: the op's name and (user, key) when the client gave an idempotency key."""
        k = K.room_keys(room)
        ik, ttl = self._idem(k, op, idem)
        return Call("room_publish", room, [k.meta, k.hist, *ik], [*self._durable(k, body), meta_field, value, *ttl])

    def room_like(self, room: str, n: int, flush: str = "") -> Call:
        """`flush`: the id of this hub's flush ("" none): a repeated id is not counted again."""
        k = K.room_keys(room)
        ids = ([k.like_flushes], [self.hub_id, flush, IDEM_TTL_MS]) if flush else ([], [])
        return Call(
            "room_like", room, [k.meta, k.hist, k.milestones, k.live, *ids[0]],
            [self.pubcmd, k.channel, n, new_epoch(), self.maxlen, *ids[1]],
        )  # fmt: skip

    def presence_sync(
        self, room: str, ttl_ms: int, arrived: list[str], gone: list[str], names: dict[str, str] | None = None
    ) -> list[Call]:
        """Chunked, so that one script never holds the shard for long. `names`: arrivals'
        display names, sent as pairs after the departures."""
        k = K.room_keys(room)
        keys = [k.ref, k.hubs, k.hub_users(self.hub_id), k.meta, k.names, k.live, k.live_hll]
        names = names or {}
        step = PRESENCE_CHUNK
        return [
            Call("presence_sync", room, keys, [self.hub_id, ttl_ms, len(a), len(g), *a, *g, *named])
            for i in range(0, max(len(arrived), len(gone), 1), step)
            for a, g in [(arrived[i : i + step], gone[i : i + step])]
            for named in [[x for u in a if u in names for x in (u, names[u])]]
        ]

    def presence_beat(self, room: str, ttl_ms: int, expect: int) -> Call:
        k = K.room_keys(room)
        return Call(
            "presence_beat",
            room,
            [k.hubs, k.ref, k.meta, k.hub_users(self.hub_id), k.hist, k.milestones, k.live],
            [self.hub_id, ttl_ms, expect, self.pubcmd, k.channel, new_epoch(), self.maxlen],
        )

    def presence_reap(self, room: str, hub_id: str, only_dead: bool = False) -> Call:
        k = K.room_keys(room)
        return Call("presence_reap", room, [k.ref, k.hubs, k.hub_users(hub_id)], [hub_id, "1" if only_dead else "0"])

    def sale_create(self, room: str, sale: str, info: bytes, stock: int, body: bytes, idem: Idem = None) -> Call:
        k = K.room_keys(room)
        ik, ttl = self._idem(k, "sale_create", idem)
        return Call(
            "sale_create", room, [k.sales, k.meta, k.hist, k.sales_open, *ik], [*self._durable(k, body), sale, info, stock, *ttl]
        )

    def sale_close(self, room: str, sale: str, body: bytes) -> Call:
        k = K.room_keys(room)
        return Call("sale_close", room, [k.sales, k.meta, k.hist, k.sales_open], [self.pubcmd, k.channel, sale, new_epoch(), self.maxlen, body])

    def sale_buy(
        self, room: str, sale: str, user: str, qty: int, key: str, order_prefix: str, pay_window_ms: int, sold_out: bytes
    ) -> Call:
        k = K.room_keys(room)
        idem_field = buy_field(user, key)
        return Call(
            "sale_buy",
            room,
            [k.sales, k.bought(sale), k.idem(sale), k.orders, k.pending, self.orders_stream(room), k.meta, k.hist, k.live],
            [self.pubcmd, k.channel, sale, user, qty, idem_field, order_prefix, pay_window_ms,
             new_epoch(), self.maxlen, room, key, sold_out],
        )  # fmt: skip

    def order_release(self, room: str, order: str, sale: str, status: str, session: str = "") -> Call:
        """`session`: the live session the order was placed in ("" none): its figures move."""
        k = K.room_keys(room)
        keys = [k.orders, k.pending, k.sales, k.bought(sale), self.orders_stream(room), k.meta, k.live]
        keys += [k.session(session)] if session else []
        return Call("order_release", room, keys, [order, status, self.pubcmd, k.channel])

    def order_confirm(self, room: str, order: str, session: str = "") -> Call:
        k = K.room_keys(room)
        keys = [k.orders, k.pending, self.orders_stream(room), k.meta, k.live]
        keys += [k.session(session)] if session else []
        return Call("order_confirm", room, keys, [order])

    # -- bounded state (broker/expiry_ops.py) -------------------------------------------------

    def room_drop(self, room: str, orders_stream: str | None, retention_ms: int) -> Call:
        """`orders_stream`: the room's own orders stream (a cluster), deleted with it."""
        k = K.room_keys(room)
        others = [
            k.hist, k.mutes, k.orders, k.milestones, k.info, k.entrants, k.names, k.won, k.bans, k.words,
            k.strikes, k.reported, k.live, k.live_hll, k.sales_open, k.like_flushes,
        ]  # fmt: skip
        others += [orders_stream] if orders_stream else []
        return Call(
            "room_drop", room, [k.meta, k.ref, k.hubs, k.pending, k.sales, k.draws, k.reports, k.sessions, *others],
            [f"{K.PREFIX}:{{{room}}}:", retention_ms],
        )  # fmt: skip

    def idle_settle(self, room: str, seen_ms: int, new: str) -> Call:
        """Runs on the idle index's node: `room` is only where it lives (its shard)."""
        return Call("idle_settle", room, [K.ROOMS_IDLE], [room, seen_ms, new])

    def orders_trim(self, stream: str, oldest_ms: int) -> Call:
        """Run on the stream's shard (or routed by the stream key on a cluster)."""
        return Call("orders_trim", "", [stream], [oldest_ms])

    # -- moderation (kick, ban) -------------------------------------------------------------

    def room_bye(self, room: str, user: str, reason: str, ban: str) -> Call:
        """`ban`: '' (a kick: the ban as it is), '0' (lift), or banned until ms / -1."""
        k = K.room_keys(room)
        return Call("room_bye", room, [k.bans], [self.pubcmd, k.channel, user, reason, ban])

    def room_admit(self, room: str, user: str) -> Call:
        k = K.room_keys(room)
        return Call("room_admit", room, [k.info, k.meta, k.bans], [user])

    def room_mute(self, room: str, user: str, seconds: int | None, ladder: tuple[int, ...]) -> Call:
        """`seconds` None: the user's next step on `ladder`."""
        k = K.room_keys(room)
        return Call("room_mute", room, [k.mutes, k.strikes], [user, "escalate" if seconds is None else seconds, *ladder])

    def room_report(self, room: str, seq: int, user: str, reason: str, body: bytes) -> Call:
        k = K.room_keys(room)
        return Call("room_report", room, [k.reports, k.reported, k.report(seq)], [seq, user, reason, body])

    # -- draws (core/draws.py) ---------------------------------------------------------------

    def draw_start(
        self, room: str, body: bytes, draw: str, info: bytes, seed_hex: str, keyword: str, ends_at: int, exclude: bool,
        idem: Idem = None,
    ) -> Call:  # fmt: skip
        k = K.room_keys(room)
        ik, ttl = self._idem(k, "draw_start", idem)
        return Call(
            "draw_start", room, [k.draws, k.entrants, k.meta, k.hist, k.live, *ik],
            [*self._durable(k, body), draw, info, seed_hex, keyword, ends_at, int(exclude), *ttl],
        )  # fmt: skip

    def draw_join(self, room: str, draw: str, user: str, name: str) -> Call:
        k = K.room_keys(room)
        return Call("draw_join", room, [k.draws, k.entrants, k.names, k.won], [draw, user, name])

    def draw_claim(self, room: str, draw: str, ttl_ms: int) -> Call:
        return Call("draw_claim", room, [K.room_keys(room).draws], [draw, self.hub_id, ttl_ms])

    def draw_result(self, room: str, draw: str, body: bytes, result: bytes, counted: int, online: bool) -> Call:
        """`online`: the entrants are this hub's sorted pool list, not the `entrants` set."""
        k = K.room_keys(room)
        pool = [k.online_pool(draw, self.hub_id)] if online else []
        return Call(
            "draw_result", room, [k.draws, k.entrants, k.draw_entrants(draw), k.meta, k.hist, *pool],
            [*self._durable(k, body), draw, result, counted],
        )  # fmt: skip

    # -- live sessions (core/live.py) ------------------------------------------------------

    def live_start(self, room: str, body: bytes, session: str, started_at: int) -> Call:
        k = K.room_keys(room)
        return Call(
            "live_start", room, [k.meta, k.hist, k.live, k.live_hll, k.sessions, k.ref],
            [*self._durable(k, body), session, started_at],
        )  # fmt: skip

    def live_end(self, room: str, body: bytes, session: str, ended_at: int, retention_ms: int, idle_ms: int) -> Call:
        k = K.room_keys(room)
        return Call(
            "live_end", room,
            [k.meta, k.hist, k.live, k.live_hll, k.session(session), k.session_hll(session), k.sessions, k.ref],
            [*self._durable(k, body), session, ended_at, retention_ms, idle_ms],
        )  # fmt: skip

    def session_read(self, room: str, session: str) -> Call:
        k = K.room_keys(room)
        return Call(
            "session_read", room, [k.meta, k.live, k.live_hll, k.session(session), k.session_hll(session)], [session]
        )
