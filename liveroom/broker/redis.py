"""The Redis broker: the room operations of broker/base.py as Lua scripts, on whichever
topology holds the rooms (topology.py), with pub/sub through subscriptions.py.

Each operation builds its script's KEYS and ARGV (calls.py), runs it by SHA on the room's
node, and turns the reply into Python values (wire.py) or a refusal (`errors.refusal`).
It knows nothing of WebSockets or viewers.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

import msgpack

from liveroom.broker import keys as K
from liveroom.broker.base import Beat, BrokerEvents, DrawClaim, DrawRecord, RoomState, SaleRecord, SessionFigures
from liveroom.broker.calls import Call, Calls
from liveroom.broker.scripts import Scripts
from liveroom.broker.subscriptions import Subscriptions
from liveroom.broker.topology import Cluster, Shards, Topology, bounded
from liveroom.broker.wire import parse_message, room_state, sale_records
from liveroom.config import RedisConfig
from liveroom.errors import DRAW_OPEN, MUTED, NO_SUCH_SALE, RATE_LIMITED, ReplyError, Unavailable, refusal

log = logging.getLogger(__name__)
SESSION_ID = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")  # a session id as core/live.py makes them


class RedisBroker:
    def __init__(self, cfg: RedisConfig, hub_id: str, history_len: int) -> None:
        if not cfg.urls and not cfg.cluster:
            raise ValueError("no Redis configured")
        self.hub_id = hub_id
        self._timeout = cfg.timeout_ms / 1000
        self.topology: Topology = Cluster(cfg.cluster, self._timeout) if cfg.cluster else Shards(cfg.urls, self._timeout)
        self.clustered = self.topology.sharded
        pubcmd = "SPUBLISH" if self.topology.sharded else "PUBLISH"
        self.calls = Calls(pubcmd, self.topology.orders_stream, history_len, hub_id)
        self.scripts = Scripts()
        self._subs: Subscriptions | None = None

    async def start(self, events: BrokerEvents) -> None:
        await self.topology.start()

        def deliver(channel: bytes, data: bytes) -> None:
            msg = parse_message(data)
            if msg is not None:
                events.on_message(K.room_of_channel(channel), msg)

        self._subs = Subscriptions(self.topology, self._timeout, deliver, events.on_reconnect)

    async def close(self) -> None:
        if self._subs is not None:
            await self._subs.close()
        await self.topology.close()

    async def ping_all(self) -> bool:
        """True when every shard (or every cluster master) answers."""
        try:
            return await self.topology.ping_all()
        except Unavailable:
            return False

    async def _run(self, call: Call) -> Any:
        return await self.topology.call(self.scripts[call.script], call.room, call.keys, call.args)

    def _cmd(self, room: str) -> Any:
        return self.topology.client(room)

    async def subscribe(self, room: str) -> None:
        assert self._subs is not None, "start() first"
        await self._subs.subscribe(room)

    async def unsubscribe(self, room: str) -> None:
        assert self._subs is not None, "start() first"
        await self._subs.unsubscribe(room)

    # -- room operations -------------------------------------------------------------------

    async def state(self, room: str, create: bool = True) -> RoomState:
        """`create=False` reads only (the room gets no epoch if it has none)."""
        return room_state(await self._run(self.calls.room_state(room, create)))

    async def room_exists(self, room: str) -> bool:
        """One read (EXISTS): created with PUT /api/rooms/{room}, or already in use (its meta
        hash: a room joined before rooms had to be created, or under implicit_rooms)."""
        k = K.room_keys(room)
        return bool(await bounded(self._cmd(room).exists(k.info, k.meta), self._timeout))

    async def room_put(self, room: str, fields: dict[str, str], by: str, now_ms: int) -> bool:
        """Create or update the room's info hash; True when it was created now."""
        k = K.room_keys(room)
        cmd = self._cmd(room)
        created = bool(await bounded(cmd.hsetnx(k.info, "created_at", str(now_ms)), self._timeout))
        await bounded(cmd.hset(k.info, mapping={**fields, "updated_at": str(now_ms), "updated_by": by}), self._timeout)
        return created

    async def room_info(self, room: str) -> dict[str, str]:
        raw = await bounded(self._cmd(room).hgetall(K.room_keys(room).info), self._timeout)
        return {a.decode(): b.decode() for a, b in raw.items()}

    async def history(self, room: str, after_seq: int, count: int) -> list[tuple[int, bytes]]:
        """Durable events with seq > after_seq, oldest first: (seq, body)."""
        entries = await bounded(
            self._cmd(room).xrange(K.room_keys(room).hist, min=f"({after_seq}-0", max="+", count=count), self._timeout
        )
        return [(int(entry_id.split(b"-", 1)[0]), fields[b"e"]) for entry_id, fields in entries]

    async def publish_comment(
        self, room: str, body: bytes, user: str, rate: float, burst: int, norm: str = "", name: str = ""
    ) -> tuple[int, str]:
        """(seq, epoch); refused `muted` or `rate_limited` (the allowance over all hubs).
        `norm` (the normalised text) lets the comment enter an open keyword draw."""
        seq, epoch = await self._run(self.calls.room_comment(room, body, user, rate, burst, norm, name))
        if seq == -1:
            until = int(epoch)
            raise muted_refusal(until)
        if seq == -2:
            raise refusal(RATE_LIMITED)
        return int(seq), epoch.decode()

    async def publish_event(self, room: str, body: bytes, meta_field: str = "", value: bytes = b"") -> tuple[int, str]:
        seq, epoch = await self._run(self.calls.room_publish(room, body, meta_field, value))
        return int(seq), epoch.decode()

    async def add_likes(self, room: str, n: int) -> tuple[int, list[str]]:
        """(the room's total, ids of the milestones it crossed that start a draw)."""
        total, draws = await self._run(self.calls.room_like(room, n))
        return int(total), [d.decode() for d in draws]

    async def mute(self, room: str, user: str, until_ms: int | None) -> None:
        """until_ms None unmutes; -1 mutes forever."""
        k = K.room_keys(room)
        change = self._cmd(room).hdel(k.mutes, user) if until_ms is None else self._cmd(room).hset(k.mutes, user, until_ms)
        await bounded(change, self._timeout)

    async def bye(self, room: str, user: str, reason: str, ban: int | None = None) -> None:
        """Every hub's sockets of `user` in the room get `bye` `reason` ('' sends none);
        `ban`: None leaves the ban as it is, 0 lifts it, else banned until ms (-1 forever)."""
        await self._run(self.calls.room_bye(room, user, reason, "" if ban is None else str(ban)))

    async def admit(self, room: str, user: str) -> tuple[bool, int | None]:
        """(the room exists, the user banned until ms / -1, or None): one read."""
        exists, banned = await self._run(self.calls.room_admit(room, user))
        return bool(exists), int(banned) if banned else None

    async def mute_step(self, room: str, user: str, seconds: int | None, ladder: tuple[int, ...]) -> tuple[int, int]:
        """(muted until ms, -1 forever, 0 unmuted; the ladder step taken, 0 without)."""
        until, step = await self._run(self.calls.room_mute(room, user, seconds, ladder))
        return int(until), int(step)

    async def words(self, room: str) -> tuple[list[str], str, bool, str]:
        raw = await bounded(self._cmd(room).hgetall(K.room_keys(room).words), self._timeout)
        words = json.loads(raw[b"words"]) if b"words" in raw else []
        return words, raw.get(b"action", b"").decode(), raw.get(b"contacts") == b"1", raw.get(b"ver", b"").decode()

    async def words_version(self, room: str) -> str:
        ver = await bounded(self._cmd(room).hget(K.room_keys(room).words, "ver"), self._timeout)
        return ver.decode() if ver else ""

    async def words_put(self, room: str, words: list[str], action: str, contacts: bool) -> str:
        """One HSET (atomic): the list, its action and a new version every hub's cache sees."""
        ver = secrets.token_hex(6)
        fields = {"words": json.dumps(words, ensure_ascii=False), "action": action, "contacts": int(contacts), "ver": ver}
        await bounded(self._cmd(room).hset(K.room_keys(room).words, mapping=fields), self._timeout)
        return ver

    async def report(self, room: str, seq: int, user: str, reason: str, body: bytes) -> int:
        return int(await self._run(self.calls.room_report(room, seq, user, reason, body)))

    async def reports(self, room: str, count: int) -> list[tuple[int, int, bytes | None, dict[str, str]]]:
        k = K.room_keys(room)
        cmd = self._cmd(room)
        top = await bounded(cmd.zrevrange(k.reports, 0, count - 1, withscores=True), self._timeout)
        out = []
        for seq_b, n in top:
            seq = int(seq_b)
            body = await bounded(cmd.hget(k.reported, seq), self._timeout)
            who = await bounded(cmd.hgetall(k.report(seq)), self._timeout)
            out.append((seq, int(n), body, {a.decode(): b.decode() for a, b in who.items()}))
        return out

    async def report_of(self, room: str, seq: int) -> tuple[int, bytes | None] | None:
        k = K.room_keys(room)
        cmd = self._cmd(room)
        n = await bounded(cmd.zscore(k.reports, seq), self._timeout)
        if n is None:
            return None
        return int(n), await bounded(cmd.hget(k.reported, seq), self._timeout)

    async def report_close(self, room: str, seq: int) -> bool:
        """Forget a comment's reports (resolved); False when it had none."""
        k = K.room_keys(room)
        cmd = self._cmd(room)
        gone = await bounded(cmd.zrem(k.reports, seq), self._timeout)
        await bounded(cmd.delete(k.report(seq)), self._timeout)
        await bounded(cmd.hdel(k.reported, seq), self._timeout)
        return bool(gone)

    async def presence_sync(
        self, room: str, arrived: list[str], gone: list[str], ttl_ms: int, names: dict[str, str] | None = None
    ) -> int:
        """Make this hub's users of the room in Redis match `arrived`/`gone`; the online count.
        `names`: display names of arrivals, written to the room's names hash."""
        online = 0
        for call in self.calls.presence_sync(room, ttl_ms, arrived, gone, names or {}):
            online = int(await self._run(call))
        return online

    async def presence_beat(self, room: str, ttl_ms: int, expect: int = -1) -> Beat:
        """`expect`: how many users this hub holds in the room (-1: don't check)."""
        online, lost, dead, draws = await self._run(self.calls.presence_beat(room, ttl_ms, expect))
        return Beat(int(online), bool(int(lost)), [h.decode() for h in dead], [d.decode() for d in draws])

    async def presence_reap(self, room: str, hub_id: str) -> int:
        return int(await self._run(self.calls.presence_reap(room, hub_id)))

    # -- milestones ------------------------------------------------------------------------

    async def milestone_set(self, room: str, milestone: str, record: bytes) -> None:
        await bounded(self._cmd(room).hset(K.room_keys(room).milestones, milestone, record), self._timeout)

    async def milestone_remove(self, room: str, milestone: str) -> bool:
        return bool(await bounded(self._cmd(room).hdel(K.room_keys(room).milestones, milestone), self._timeout))

    async def milestones(self, room: str) -> dict[str, dict[str, Any]]:
        raw = await bounded(self._cmd(room).hgetall(K.room_keys(room).milestones), self._timeout)
        out = {}
        for k, v in raw.items():
            # its `event` is a msgpack body stored as a str (cmsgpack reads no bin): not ours to read
            rec = msgpack.unpackb(v, raw=False, unicode_errors="surrogateescape")
            rec.pop("event", None)
            out[k.decode()] = rec
        return out

    # -- flash sales -----------------------------------------------------------------------

    def orders_stream(self, room: str) -> str:
        return self.topology.orders_stream(room)

    async def sale_create(self, room: str, sale: str, info: bytes, stock: int, body: bytes) -> tuple[int, str]:
        # registered first: the order reaper must know every room that can hold an order
        await bounded(self._cmd(room).sadd(K.SALE_ROOMS, room), self._timeout)
        seq, epoch = await self._run(self.calls.sale_create(room, sale, info, stock, body))
        return int(seq), epoch.decode()

    async def sale_close(self, room: str, sale: str, body: bytes) -> int:
        """The event's seq; refused `no_such_sale`."""
        seq, _ = await self._run(self.calls.sale_close(room, sale, body))
        if int(seq) < 0:
            raise refusal(NO_SUCH_SALE)
        return int(seq)

    async def sale_buy(
        self, room: str, sale: str, user: str, qty: int, key: str, order_prefix: str, pay_window_ms: int,
        sold_out_body: bytes,
    ) -> tuple[str, int, bool]:
        """(order id, remaining, first time); a refusal is raised with its code."""
        out = await self._run(self.calls.sale_buy(room, sale, user, qty, key, order_prefix, pay_window_ms, sold_out_body))
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

    async def due_orders(self, room: str, now_ms: int, count: int = 500) -> list[str]:
        ids = await bounded(
            self._cmd(room).zrangebyscore(K.room_keys(room).pending, "-inf", now_ms, start=0, num=count), self._timeout
        )
        return [i.decode() for i in ids]

    def registries(self) -> list[Any]:
        """One client per place SALE_ROOMS lives (each standalone shard, or the cluster)."""
        return self.topology.registries()

    async def sale_rooms(self, registry: Any) -> list[str]:
        return [r.decode() for r in await bounded(registry.smembers(K.SALE_ROOMS), self._timeout)]

    async def reaper_lock(self, registry: Any, ttl_ms: int) -> bool:
        return bool(await bounded(registry.set(K.REAPER_LOCK, self.hub_id, nx=True, px=ttl_ms), self._timeout))

    # -- lucky draws -----------------------------------------------------------------------

    async def draw_start(
        self, room: str, draw: str, body: bytes, info: bytes, seed_hex: str, keyword: str, ends_at: int, exclude: bool
    ) -> tuple[int, str]:
        """(seq, epoch); refused `draw_open`. Indexed as due first (a cluster's index is in
        another slot than the room: no script can write both), unindexed if refused."""
        member = f"{room} {draw}"
        await bounded(self._cmd(room).zadd(K.DRAWS_DUE, {member: ends_at}), self._timeout)
        seq, epoch = await self._run(self.calls.draw_start(room, body, draw, info, seed_hex, keyword, ends_at, exclude))
        if int(seq) < 0:
            await bounded(self._cmd(room).zrem(K.DRAWS_DUE, member), self._timeout)
            raise refusal(DRAW_OPEN)
        return int(seq), epoch.decode()

    async def draw_join(self, room: str, draw: str, user: str, name: str) -> bool:
        """True when the user entered now, False when already in; refusals raised."""
        out = await self._run(self.calls.draw_join(room, draw, user, name))
        if out[0] != b"ok":
            raise refusal(out[1].decode(), out[2].decode())
        return bool(int(out[1]))

    async def draw_claim(self, room: str, draw: str, ttl_ms: int) -> DrawClaim:
        out = await self._run(self.calls.draw_claim(room, draw, ttl_ms))
        if out[0] != b"ok":
            return DrawClaim(out[0].decode())
        return DrawClaim("ok", out[1].decode(), out[2] == b"1", out[3].decode() if len(out) > 3 else "")

    async def draw_store_pool(self, room: str, draw: str, pool: list[str]) -> None:
        """An online draw's sorted pool as this hub's LIST, 10,000 per RPUSH (in order)."""
        key = K.room_keys(room).online_pool(draw, self.hub_id)
        await bounded(self._cmd(room).unlink(key), self._timeout)
        for i in range(0, len(pool), 10_000):
            await bounded(self._cmd(room).rpush(key, *pool[i : i + 10_000]), self._timeout)

    async def draw_drop_pool(self, room: str, draw: str) -> None:
        await bounded(self._cmd(room).unlink(K.room_keys(room).online_pool(draw, self.hub_id)), self._timeout)

    async def draw_pool_page(self, room: str, draw: str, start: int, count: int) -> list[str]:
        """A closed online draw's entrants by position (LRANGE: O(start + count))."""
        ids = await bounded(
            self._cmd(room).lrange(K.room_keys(room).draw_entrants(draw), start, start + count - 1), self._timeout
        )
        return [i.decode() for i in ids]

    async def draw_won(self, room: str) -> set[str]:
        """Everyone who has won a draw in the room (SSCAN, 10,000 per step)."""
        out: set[str] = set()
        cursor = 0
        while True:
            cursor, found = await bounded(self._cmd(room).sscan(K.room_keys(room).won, cursor, count=10_000), self._timeout)
            out.update(u.decode() for u in found)
            if int(cursor) == 0:
                return out

    def _entrants_key(self, room: str, closed_draw: str | None) -> str:
        k = K.room_keys(room)
        return k.draw_entrants(closed_draw) if closed_draw else k.entrants

    async def draw_entrants(self, room: str, closed_draw: str | None, after: str, count: int) -> list[str]:
        """Up to `count` entrants after `after` ("" = from the start), in code point order
        (ZRANGEBYLEX from an exclusive bound: O(log N + count), never a whole big set)."""
        lo = "(" + after if after else "-"
        ids = await bounded(
            self._cmd(room).zrangebylex(self._entrants_key(room, closed_draw), lo, "+", start=0, num=count),
            self._timeout,
        )
        return [i.decode() for i in ids]

    async def draw_entrant_count(self, room: str, closed_draw: str | None) -> int:
        return int(await bounded(self._cmd(room).zcard(self._entrants_key(room, closed_draw)), self._timeout))

    async def presence_scan(self, room: str, cursor: int, count: int) -> tuple[int, list[str]]:
        """One HSCAN step over the room's presence (users present on any hub)."""
        nxt, found = await bounded(self._cmd(room).hscan(K.room_keys(room).ref, cursor, count=count), self._timeout)
        return int(nxt), [u.decode() for u in found]

    async def draw_result(
        self, room: str, draw: str, body: bytes, result: bytes, counted: int, online: bool = False
    ) -> int:
        """The draw_result event's seq; -1 when a result was already stored (another hub
        closed it), -2 when the entrants changed since they were read."""
        seq, _ = await self._run(self.calls.draw_result(room, draw, body, result, counted, online))
        return int(seq)

    async def draw_mark_won(self, room: str, users: list[str]) -> None:
        """Add winners to the room's `won` set, 1,000 per SADD (idempotent)."""
        for i in range(0, len(users), 1000):
            await bounded(self._cmd(room).sadd(K.room_keys(room).won, *users[i : i + 1000]), self._timeout)

    async def draw_names(self, room: str, users: list[str]) -> list[str | None]:
        out: list[str | None] = []
        for i in range(0, len(users), 1000):
            got = await bounded(self._cmd(room).hmget(K.room_keys(room).names, users[i : i + 1000]), self._timeout)
            out.extend(g.decode() if g is not None else None for g in got)
        return out

    async def draw_record(self, room: str, draw: str) -> DrawRecord | None:
        fields = ["info", "status", "seed", "result", "sess"]
        got = await bounded(
            self._cmd(room).hmget(K.room_keys(room).draws, [f"{draw}:{f}" for f in fields]), self._timeout
        )
        info, status, seed, result, sess = got
        if info is None:
            return None
        return DrawRecord(
            id=draw,
            info=msgpack.unpackb(info),
            status=status.decode(),
            seed_hex=seed.decode(),
            result=msgpack.unpackb(result) if result else None,
            session=sess.decode() if sess else "",
        )

    async def due_draws(self, registry: Any, now_ms: int, count: int) -> list[tuple[str, str]]:
        """(room, draw) pairs of the registry whose ends_at has passed."""
        members = await bounded(registry.zrangebyscore(K.DRAWS_DUE, "-inf", now_ms, start=0, num=count), self._timeout)
        out = []
        for m in members:
            room, _, draw = m.decode().partition(" ")
            out.append((room, draw))
        return out

    async def draw_done(self, room: str, draw: str) -> None:
        await bounded(self._cmd(room).zrem(K.DRAWS_DUE, f"{room} {draw}"), self._timeout)

    # -- live sessions ---------------------------------------------------------------------

    async def live_start(self, room: str, body: bytes, session: str, started_at: int) -> tuple[int, str, int]:
        """(seq, session id, started_at): seq 0 when a session was live already (its id and
        start). The room goes into its shard's idle index first (a cluster's index is in
        another slot than the room): no live session can exist unindexed."""
        await bounded(self._cmd(room).zadd(K.SESSIONS_LIVE, {room: started_at}), self._timeout)
        seq, sid, at = await self._run(self.calls.live_start(room, body, session, started_at))
        return int(seq), sid.decode(), int(at)

    async def live_end(
        self, room: str, body: bytes, session: str, ended_at: int, retention_ms: int, idle_ms: int = 0
    ) -> tuple[int, int]:
        """(seq, ended_at): seq 0 when it had ended already, -1 no such session, -2 not idle."""
        seq, at = await self._run(self.calls.live_end(room, body, session, ended_at, retention_ms, idle_ms))
        return int(seq), int(at)

    async def live_now(self, room: str) -> tuple[str, int] | None:
        """(session id, started_at) of the room's live session, or None."""
        sid, at = await bounded(self._cmd(room).hmget(K.room_keys(room).meta, ["live", "live_at"]), self._timeout)
        return (sid.decode(), int(at or 0)) if sid else None

    async def session_read(self, room: str, session: str) -> SessionFigures | None:
        flat, viewers, live = await self._run(self.calls.session_read(room, session))
        if not flat:
            return None
        fields = {}
        for name, value in zip(flat[::2], flat[1::2]):
            try:
                fields[name.decode()] = int(value)
            except ValueError:
                continue  # the id
        return SessionFigures(session, bool(live), fields, int(viewers))

    async def sessions(self, room: str, count: int) -> list[tuple[str, int]]:
        """(id, started_at) of the room's sessions, newest first."""
        got = await bounded(
            self._cmd(room).zrevrange(K.room_keys(room).sessions, 0, count - 1, withscores=True), self._timeout
        )
        return [(m.decode(), int(score)) for m, score in got]

    async def live_rooms(self, registry: Any, count: int) -> list[tuple[str, int]]:
        """(room, ms indexed) of the registry's rooms that may have a live session."""
        got = await bounded(registry.zrange(K.SESSIONS_LIVE, 0, count - 1, withscores=True), self._timeout)
        return [(m.decode(), int(score)) for m, score in got]

    async def live_forget(self, room: str) -> None:
        await bounded(self._cmd(room).zrem(K.SESSIONS_LIVE, room), self._timeout)


def muted_refusal(until_ms: int) -> ReplyError:
    """`muted`, saying how long is left: "muted for another 3600 s (until <ms>)", or "muted
    for good"."""
    if until_ms < 0:
        return refusal(MUTED, "for good")
    left = max(1, -(-(until_ms - int(time.time() * 1000)) // 1000))
    return refusal(MUTED, f"for another {left} s (until {until_ms})")
