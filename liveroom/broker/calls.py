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

    def room_state(self, room: str, create: bool = True) -> Call:
        k = K.room_keys(room)
        return Call("room_state", room, [k.meta, k.ref, k.hist, k.sales, k.draws], [new_epoch() if create else ""])

    def room_comment(
        self, room: str, body: bytes, user: str, rate: float, burst: int, norm: str = "", name: str = ""
    ) -> Call:
        """`norm`: the comment normalised for keyword draws ("" skips the draw check)."""
        k = K.room_keys(room)
        return Call(
            "room_comment", room, [k.meta, k.hist, k.mutes, k.rate(user), k.draws, k.entrants, k.names, k.won, k.live],
            [*self._durable(k, body), user, rate, burst, norm, name],
        )  # fmt: skip

    def room_publish(self, room: str, body: bytes, meta_field: str, value: bytes) -> Call:
        k = K.room_keys(room)
        return Call("room_publish", room, [k.meta, k.hist], [*self._durable(k, body), meta_field, value])

    def room_like(self, room: str, n: int) -> Call:
        k = K.room_keys(room)
        return Call("room_like", room, [k.meta, k.hist, k.milestones, k.live], [self.pubcmd, k.channel, n, new_epoch(), self.maxlen])

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

    def presence_reap(self, room: str, hub_id: str) -> Call:
        k = K.room_keys(room)
        return Call("presence_reap", room, [k.ref, k.hubs, k.hub_users(hub_id)], [hub_id])

    def sale_create(self, room: str, sale: str, info: bytes, stock: int, body: bytes) -> Call:
        k = K.room_keys(room)
        return Call("sale_create", room, [k.sales, k.meta, k.hist], [*self._durable(k, body), sale, info, stock])

    def sale_close(self, room: str, sale: str, body: bytes) -> Call:
        k = K.room_keys(room)
        return Call("sale_close", room, [k.sales, k.meta, k.hist], [self.pubcmd, k.channel, sale, new_epoch(), self.maxlen, body])

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
        self, room: str, body: bytes, draw: str, info: bytes, seed_hex: str, keyword: str, ends_at: int, exclude: bool
    ) -> Call:
        k = K.room_keys(room)
        return Call(
            "draw_start", room, [k.draws, k.entrants, k.meta, k.hist, k.live],
            [*self._durable(k, body), draw, info, seed_hex, keyword, ends_at, int(exclude)],
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
