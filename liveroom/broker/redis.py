"""The Redis broker: the operations of broker/base.py as Lua scripts, on whichever
topology holds the rooms (topology.py), with pub/sub through subscriptions.py. The room's
own operations are here; sales, draws, moderation and sessions are in their *_ops.py.

Each operation builds its script's KEYS and ARGV (calls.py), runs it by SHA on the room's
node, and turns the reply into Python values (wire.py) or a refusal (`errors.refusal`).
It knows nothing of WebSockets or viewers.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack

from liveroom.broker import keys as K
from liveroom.broker.base import Beat, BrokerEvents, RoomState
from liveroom.broker.calls import Calls, Idem
from liveroom.broker.draws_ops import DrawsOps
from liveroom.broker.moderation_ops import ModerationOps, muted_refusal
from liveroom.broker.sales_ops import SalesOps
from liveroom.broker.scripts import Scripts
from liveroom.broker.sessions_ops import SessionsOps
from liveroom.broker.subscriptions import Subscriptions
from liveroom.broker.topology import Cluster, Shards, Topology, bounded
from liveroom.broker.wire import parse_message, room_state
from liveroom.config import RedisConfig, SalesConfig
from liveroom.errors import RATE_LIMITED, Unavailable, refusal

log = logging.getLogger(__name__)


class RedisBroker(SalesOps, DrawsOps, ModerationOps, SessionsOps):
    def __init__(self, cfg: RedisConfig, hub_id: str, history_len: int, sales: SalesConfig | None = None) -> None:
        if not cfg.urls and not cfg.cluster:
            raise ValueError("no Redis configured")
        self.hub_id = hub_id
        if sales is not None:
            self.wait_replicas, self.wait_ms = sales.wait_replicas, sales.wait_ms
        self._timeout = cfg.timeout_ms / 1000
        self.topology: Topology = Cluster(cfg.cluster, self._timeout) if cfg.cluster else Shards(cfg.urls, self._timeout)
        self.clustered = self.topology.sharded
        pubcmd = "SPUBLISH" if self.topology.sharded else "PUBLISH"
        self.calls = Calls(pubcmd, self.topology.orders_stream, history_len, hub_id)
        self.scripts = Scripts()
        self._subs: Subscriptions | None = None
        self._probe = (cfg.probe_interval_ms / 1000, cfg.probe_timeout_ms / 1000)

    async def start(self, events: BrokerEvents) -> None:
        await self.topology.start()

        def deliver(channel: bytes, data: bytes) -> None:
            msg = parse_message(data)
            if msg is not None:
                events.on_message(K.room_of_channel(channel), msg)

        self._subs = Subscriptions(
            self.topology, self._timeout, deliver, events.on_reconnect,
            K.probe_prefix(self.hub_id) if self._probe[0] > 0 else "", *self._probe,
        )  # fmt: skip

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

    async def subscribe(self, room: str) -> None:
        assert self._subs is not None, "start() first"
        await self._subs.subscribe(room)
        # in the idle index from its first viewer on (kept if there already), so that a room
        # whose only hub dies, and so never sees its last viewer leave, is still swept
        await self.mark_idle(room, keep=True)

    async def unsubscribe(self, room: str) -> None:
        assert self._subs is not None, "start() first"
        await self._subs.unsubscribe(room)

    # -- room operations -------------------------------------------------------------------

    async def state(self, room: str, create: bool = True) -> RoomState:
        """`create=False` reads only (the room gets no epoch if it has none)."""
        return room_state(await self._run(self.calls.room_state(room, create)))

    async def renew_epoch(self, room: str, had: str, keep_from: int) -> str:
        """Move the room to a new epoch if it is still at `had`, its history trimmed to the
        seqs from `keep_from` (room_renew.lua); its epoch now."""
        now: bytes = await self._run(self.calls.room_renew(room, had, keep_from))
        return now.decode()

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
        await self.mark_active(room)  # created or updated on purpose: kept until it is over again
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
        self, room: str, body: bytes, user: str, rate: float, burst: int, norm: str = "", name: str = "", key: str = ""
    ) -> tuple[int, str]:
        """(seq, epoch); refused `muted` or `rate_limited` (the allowance over all hubs).
        `norm` (the normalised text) lets the comment enter an open keyword draw. `key`: the
        client's idempotency key: a retry gets the first answer and publishes nothing."""
        seq, epoch = await self._run(self.calls.room_comment(room, body, user, rate, burst, norm, name, key))
        if seq == -1:
            until = int(epoch)
            raise muted_refusal(until)
        if seq == -2:
            raise refusal(RATE_LIMITED)
        return int(seq), epoch.decode()

    async def publish_event(
        self, room: str, body: bytes, meta_field: str = "", value: bytes = b"", op: str = "", idem: Idem = None
    ) -> tuple[int, str]:
        """`op`, `idem`: the op and (user, key) of a client's idempotency key (see room_comment)."""
        seq, epoch = await self._run(self.calls.room_publish(room, body, meta_field, value, op, idem))
        return int(seq), epoch.decode()

    async def add_likes(self, room: str, n: int, flush: str = "") -> tuple[int, list[str]]:
        """(the room's total, ids of the milestones it crossed that start a draw). `flush`:
        this hub's id for these taps; sent again after a timeout, they are not added twice."""
        total, draws = await self._run(self.calls.room_like(room, n, flush))
        return int(total), [d.decode() for d in draws]

    async def mute(self, room: str, user: str, until_ms: int | None) -> None:
        """until_ms None unmutes; -1 mutes forever."""
        k = K.room_keys(room)
        change = self._cmd(room).hdel(k.mutes, user) if until_ms is None else self._cmd(room).hset(k.mutes, user, until_ms)
        await bounded(change, self._timeout)

    async def presence_sync(
        self, room: str, arrived: list[str], gone: list[str], ttl_ms: int, names: dict[str, str] | None = None
    ) -> int:
        """Make this hub's users of the room in Redis match `arrived`/`gone`; the online count.
        `names`: display names of arrivals, written to the room's names hash."""
        online = 0
        for call in self.calls.presence_sync(room, ttl_ms, arrived, gone, names or {}):
            online = int(await self._run(call))
        if gone and online == 0:
            await self.mark_idle(room)  # the last viewer left: the room may be over
        return online

    async def presence_beat(self, room: str, ttl_ms: int, expect: int = -1) -> Beat:
        """`expect`: how many users this hub holds in the room (-1: don't check)."""
        online, lost, dead, draws = await self._run(self.calls.presence_beat(room, ttl_ms, expect))
        return Beat(int(online), bool(int(lost)), [h.decode() for h in dead], [d.decode() for d in draws])

    async def presence_reap(self, room: str, hub_id: str, only_dead: bool = False) -> int:
        """`only_dead`: not if the hub's heartbeat is fresh again (it came back)."""
        online = int(await self._run(self.calls.presence_reap(room, hub_id, only_dead)))
        if online == 0:
            await self.mark_idle(room)  # its last viewers were that hub's: the room may be over
        return online

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
