"""The Redis broker: the room operations of broker/base.py as Lua scripts, on whichever
topology holds the rooms (topology.py), with pub/sub through subscriptions.py.

Each operation builds its script's KEYS and ARGV (calls.py), runs it by SHA on the room's
node, and turns the reply into Python values (wire.py) or a refusal (`errors.refusal`).
It knows nothing of WebSockets or viewers.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack

from liveroom.broker import keys as K
from liveroom.broker.base import Beat, BrokerEvents, RoomState, SaleRecord
from liveroom.broker.calls import Call, Calls
from liveroom.broker.scripts import Scripts
from liveroom.broker.subscriptions import Subscriptions
from liveroom.broker.topology import Cluster, Shards, Topology, bounded
from liveroom.broker.wire import parse_message, room_state, sale_records
from liveroom.config import RedisConfig
from liveroom.errors import MUTED, NO_SUCH_SALE, RATE_LIMITED, ReplyError, Unavailable, refusal

log = logging.getLogger(__name__)


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

    async def publish_comment(self, room: str, body: bytes, user: str, rate: float, burst: int) -> tuple[int, str]:
        """(seq, epoch); refused `muted` or `rate_limited` (the allowance over all hubs)."""
        seq, epoch = await self._run(self.calls.room_comment(room, body, user, rate, burst))
        if seq == -1:
            until = int(epoch)
            raise refusal(MUTED, "" if until < 0 else f"until {until}")
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

    async def presence_sync(self, room: str, arrived: list[str], gone: list[str], ttl_ms: int) -> int:
        """Make this hub's users of the room in Redis match `arrived`/`gone`; the online count."""
        online = 0
        for call in self.calls.presence_sync(room, ttl_ms, arrived, gone):
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
        out = await self._run(self.calls.order_release(room, order, sale, status))
        if out[0] != b"ok":
            raise refusal(out[1].decode())

    async def order_confirm(self, room: str, order: str) -> None:
        out = await self._run(self.calls.order_confirm(room, order))
        if out[0] != b"ok":
            raise refusal(out[1].decode())

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
