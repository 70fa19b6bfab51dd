"""The chaos suite's faults and load, shared by bench/chaos.py (the table in RESULTS.md) and
tests/test_chaos.py (the same faults, small and short, with the expectations asserted).

Everything is real: Redis processes (standalone shards, or a cluster with replicas), hub
processes (`liveroom serve`, tests/support.py HubProcess) and WebSocket clients. A scenario
puts load in flight in a room on the shard that will fail (comments, notices, likes, a
flash sale with buys, a draw) and in a room on another shard, injects the fault, lets it end,
then audits what a user would notice:

- durable events lost: every comment and notice that was acked to its sender, and the draw's
  result, must reach every viewer who stayed or resumed (`since`/`epoch`) after a cut;
- oversells: buys answered `ok` beyond the sale's stock;
- confirmed orders lost: an order id acked to a buyer that the shop API no longer finds for
  that buyer (or that was acked to two buyers);
- buys unanswered: a buy on a socket that stayed open and got no reply within the timeout;
- hub crashes: hub processes (other than one killed on purpose) that exited;
- time to recover: from the end of the fault to the first comment acked again in the room;
- the other shard's room: every op acked, nothing lost;
- `unavailable` yet applied: ops answered `unavailable` whose event was published anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
import msgpack
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from liveroom.broker.sharding import shard_of
from liveroom.core.resync import RETRY_S
from liveroom.redis_local import RedisClusterProcesses, RedisProcess, find_server
from tests.support import Client, HubProcess, http, stalled_viewer, t, token

# caps off so that every viewer is sent every comment (loss is then loss, not sampling)
HUB_ENV = {
    "LIVEROOM_VIEWER_COMMENT_CAP": "0",
    "LIVEROOM_COMMENT_RATE": "0",
    "LIVEROOM_FRAME_RATE": "0",
    "LIVEROOM_ANONYMOUS": "1",
    "LIVEROOM_MAX_ANON_PER_IP": "0",
    "LIVEROOM_MAX_ANON_ROOMS_PER_IP": "0",
    "LIVEROOM_MAX_CONN_PER_IP": "0",
}
RETRYABLE = {"unavailable", "_cut", "_noreply"}  # answers after which a client retries (same key)


@dataclass
class Settings:
    """One knob set for the bench (defaults) and the tests (small, short)."""

    stop_s: float = 15.0  # how long a shard stays SIGSTOPped
    outage_s: float = 3.0  # how long a SIGKILLed shard stays down before it restarts
    viewers: int = 8  # resuming viewers in the faulted room (split over the hubs)
    buyers: int = 40
    stock: int = 25
    comment_rate: float = 5.0  # per second, one commenter per room
    notice_rate: float = 2.0
    like_rate: float = 5.0  # like frames per second (n=5 each)
    crowd: int = 5000  # viewers watching while one never reads (fault 6)
    crowd_s: float = 15.0  # how long the stalled-socket fault lasts
    reply_timeout_s: float = 5.0  # no reply this long on an open socket: "unanswered"
    settle_s: float = 30.0  # after the fault: how long recovery may take before we audit


# -- placing rooms --------------------------------------------------------------------------


def room_on_shard(shard: int, shards: int, prefix: str) -> str:
    while True:
        r = prefix + uuid.uuid4().hex[:8]
        if shard_of(r, shards) == shard:
            return r


def room_on_master(cluster: RedisClusterProcesses, index: int, prefix: str) -> str:
    """A room whose slot the cluster's `index`-th master owns (slots split as start() does)."""
    per = 16384 // cluster.masters
    while True:
        r = prefix + uuid.uuid4().hex[:8]
        if min(key_slot(r.encode()) // per, cluster.masters - 1) == index:
            return r


# -- clients that survive cuts --------------------------------------------------------------


class Actor:
    """A signed-in user that sends ops; reconnects (to the next hub) after its socket is cut.
    Every call gets an answer: the reply, `_cut` (socket closed first) or `_noreply`."""

    def __init__(self, bases: list[str], first: int, room: str, tok: str, reply_timeout_s: float) -> None:
        self.bases, self.idx, self.room, self.tok = bases, first, room, tok
        self.reply_timeout_s = reply_timeout_s
        self.client: Client | None = None
        self.dead: set[str] = set()  # bases known down (a killed hub)

    async def connect(self) -> Client:
        if self.client is not None and not self.client.closed.is_set():
            return self.client
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
            self.client = None
        last: BaseException | None = None
        for _ in range(2 * len(self.bases)):
            base = self.bases[self.idx % len(self.bases)]
            try:
                self.client = await Client.connect(base, self.room, self.tok)
                return self.client
            except Exception as e:  # hub down, Redis down (refused join): try the next
                last = e
                self.idx += 1
                await asyncio.sleep(0.2)
        raise ConnectionError(f"no hub took {self.room}: {last!r}")

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            c = await self.connect()
        except Exception:
            return {"ok": False, "error": {"code": "_cut"}}
        c._next_id += 1
        fid = c._next_id
        try:
            await c.send({"t": op, "id": fid, **fields})
        except Exception:
            return {"ok": False, "error": {"code": "_cut"}}
        try:
            await c.wait_for(lambda: fid in c.replies or c.closed.is_set(), timeout=self.reply_timeout_s)
        except AssertionError:
            return {"ok": False, "error": {"code": "_noreply"}}
        return c.replies.get(fid) or {"ok": False, "error": {"code": "_cut"}}

    async def send(self, op: str, **fields: Any) -> None:
        with contextlib.suppress(Exception):
            c = await self.connect()
            await c.send({"t": op, **fields})

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()


class Viewer:
    """A viewer who keeps watching: on a cut it resumes (`since`/`epoch`) on the next hub.
    Remembers the text of every comment and notice and every draw result it was sent."""

    def __init__(self, bases: list[str], first: int, room: str, tok: str | None) -> None:
        self.bases, self.idx, self.room, self.tok = bases, first, room, tok
        self.texts: set[str] = set()
        self.where: dict[str, set[tuple[str | None, int]]] = {}  # text -> (epoch, seq) it came with
        self.draws: set[str] = set()
        self.epoch: str | None = None
        self.seq = 0
        self.resumes = 0
        self.resets = 0  # welcomes with recovered: false after the first
        self.byes: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def _take(self, f: dict[str, Any]) -> None:
        if f["t"] == "welcome":
            if self.epoch is not None and not f.get("recovered"):
                self.resets += 1
            if not f.get("recovered") or f["epoch"] != self.epoch:
                self.seq = int(f["seq"])
            self.epoch = f["epoch"]
        elif f["t"] == "batch":
            for e in f["events"]:
                if "seq" in e:
                    self.seq = max(self.seq, int(e["seq"]))
                if e["type"] in ("comment", "notice"):
                    self.texts.add(e["text"])
                    self.where.setdefault(e["text"], set()).add((self.epoch, int(e["seq"])))
                elif e["type"] == "draw_result":
                    self.draws.add(e["draw"])
        elif f["t"] == "bye":
            self.byes[f.get("reason", "?")] += 1

    async def _run(self) -> None:
        first = True
        while not self.stop.is_set():
            base = self.bases[self.idx % len(self.bases)]
            try:
                if first:
                    c = await Client.connect(base, self.room, self.tok)
                else:
                    c = await Client.connect(base, self.room, self.tok, since=self.seq, epoch=self.epoch)
                    self.resumes += 1
            except Exception:
                self.idx += 1
                await asyncio.sleep(0.3)
                continue
            first = False
            self._take(c.welcome)
            self.ready.set()
            n = 0
            try:
                while True:
                    while n < len(c.frames):
                        self._take(c.frames[n])
                        n += 1
                    if c.closed.is_set() or self.stop.is_set():
                        break
                    c._changed.clear()
                    if n < len(c.frames):
                        continue
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(c._changed.wait(), 0.5)
            finally:
                while n < len(c.frames):
                    self._take(c.frames[n])
                    n += 1
                with contextlib.suppress(Exception):
                    await c.close()
            if not self.stop.is_set():
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, t(10))


# -- the load in one room -------------------------------------------------------------------


@dataclass
class OpLog:
    acked: list[tuple[str, float]] = field(default_factory=list)  # (text, monotonic time of the ack)
    codes: Counter[str] = field(default_factory=Counter)
    unavailable: list[str] = field(default_factory=list)  # texts answered `unavailable`
    retried: int = 0  # retries (same key) after `unavailable`, a cut or no reply
    seq: dict[str, int] = field(default_factory=dict)  # text -> the seq its ack carried

    def record(self, text: str, r: dict[str, Any]) -> None:
        if r.get("ok"):
            self.ok(text, r)
            self.codes["ok"] += 1
        else:
            code = r["error"]["code"]
            self.codes[code] += 1
            if code == "unavailable":
                self.unavailable.append(text)

    def ok(self, text: str, r: dict[str, Any]) -> None:
        self.acked.append((text, time.monotonic()))
        if "seq" in r:
            self.seq[text] = int(r["seq"])


class RoomLoad:
    """Comments, notices, likes, a sale with buys and a draw in one room, from real sockets
    spread over the hubs. `sale=False` for the bystander room on another shard."""

    def __init__(self, room: str, bases: list[str], s: Settings, sale: bool = True, viewers: int | None = None) -> None:
        self.room, self.bases, self.s, self.with_sale = room, bases, s, sale
        n = len(bases)
        rt = s.reply_timeout_s
        self.host = Actor(bases, 0, room, token(f"host-{room}", role="host", rooms=[room]), rt)
        self.commenter = Actor(bases, n - 1, room, token(f"talker-{room}"), rt)  # on the last hub
        self.liker = Actor(bases, 0, room, token(f"liker-{room}"), rt)
        self.viewers = [Viewer(bases, i, room, token(f"v{i}-{room}")) for i in range(s.viewers if viewers is None else viewers)]
        self.buyers = [Actor(bases, i, room, token(f"b{i}-{room}"), rt) for i in range(s.buyers if sale else 0)]
        self.comments, self.notices = OpLog(), OpLog()
        self.buy_first: Counter[str] = Counter()  # each buy's first answer
        self.buy_final: list[tuple[str, dict[str, Any]]] = []  # (user, last answer)
        self.noreply = 0  # calls of any kind unanswered on an open socket
        self.sale = ""
        self.draw = ""
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    async def setup(self, draw_s: int) -> None:
        for v in self.viewers:
            v.start()
        await asyncio.wait_for(asyncio.gather(*(v.ready.wait() for v in self.viewers)), t(20))
        if self.with_sale:
            r = await self.host.call("sale_create", sku="SKU1", title="chaos", price=100, stock=self.s.stock, limit=1)
            assert r["ok"], r
            self.sale = r["sale"]
            r = await self.host.call("draw_start", prize="prize", winners=3, mode="join", duration_s=draw_s)
            assert r["ok"], r
            self.draw = r["draw"]
            for a in self.buyers:
                await a.send("join_draw", draw=self.draw)

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._every(self.s.comment_rate, self.commenter, "comment", self.comments, "c")),
            asyncio.create_task(self._every(self.s.notice_rate, self.host, "notice", self.notices, "n")),
            asyncio.create_task(self._likes()),
        ]

    async def _every(self, rate: float, who: Actor, op: str, log: OpLog, tag: str) -> None:
        """An op every 1/rate s. One answered `unavailable` is retried with the same
        idempotency `key` (the contract of issue 13) until it gets another answer."""
        i = 0
        while not self.stop.is_set() and rate > 0:
            i += 1
            text = f"{self.room}:{tag}{i}"
            r = await who.call(op, text=text, key=text)
            log.record(text, r)
            while not self.stop.is_set() and not r.get("ok") and r["error"]["code"] in RETRYABLE:
                if r["error"]["code"] == "_noreply":
                    self.noreply += 1
                await asyncio.sleep(0.3)
                r = await who.call(op, text=text, key=text)
                log.retried += 1
                if r.get("ok"):
                    log.ok(text, r)
            await asyncio.sleep(1 / rate)

    async def _likes(self) -> None:
        while not self.stop.is_set() and self.s.like_rate > 0:
            await self.liker.send("like", n=5)
            await asyncio.sleep(1 / self.s.like_rate)

    def buys_over(self, seconds: float) -> None:
        """Every buyer taps once, spread over `seconds`; retries with the same key until answered."""
        step = seconds / max(1, len(self.buyers))
        for i, a in enumerate(self.buyers):
            self.tasks.append(asyncio.create_task(self._buy(a, i * step, f"b{i}-{self.room}")))

    async def _buy(self, a: Actor, delay: float, user: str) -> None:
        await asyncio.sleep(delay)
        deadline = time.monotonic() + t(self.s.settle_s)
        r = await a.call("buy", sale=self.sale, qty=1, key="k1")
        code = "ok" if r.get("ok") else r["error"]["code"]
        self.buy_first[code] += 1
        while True:
            if not r.get("ok") and r["error"]["code"] == "_noreply":
                self.noreply += 1
            if r.get("ok") or r["error"]["code"] not in RETRYABLE or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
            r = await a.call("buy", sale=self.sale, qty=1, key="k1")
        self.buy_final.append((user, r))

    async def halt(self) -> None:
        """Stop sending; wait for the buys to settle."""
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def expected(self) -> set[str]:
        return {text for text, _ in self.comments.acked + self.notices.acked}

    async def wait_delivered(self, deadline: float) -> None:
        want = self.expected()
        while time.monotonic() < deadline:
            if all(want <= v.texts for v in self.viewers):
                return
            await asyncio.sleep(0.2)

    def recovered_after(self, t0: float) -> float | None:
        after = [at for _, at in self.comments.acked if at >= t0]
        return min(after) - t0 if after else None

    async def audit(self, base: str, fault_end: float | None = None) -> dict[str, Any]:
        """What a user would notice, as numbers (see the module docstring). `lost_after`:
        of those, the events acked after the fault ended (a promoted replica may lack writes
        acked before: those are gone from Redis; what comes after must reach everyone)."""
        want = self.expected()
        after = {tx for tx, at in self.comments.acked + self.notices.acked if fault_end is not None and at >= fault_end}
        draw_note = ""
        if self.draw:
            st, body = await http("GET", f"{base}/api/rooms/{self.room}/draws/{self.draw}", token("admin", role="admin"))
            d = (body.get("draw") or {}) if st == 200 else {}
            want_draw = d.get("seed") is not None  # closed: its result must reach everyone
            if not want_draw:
                draw_note = f"draw not closed ({st}, {d.get('status') or body.get('error', {}).get('code')})"
        else:
            want_draw = False
        lost_each = [len(want - v.texts) + (1 if want_draw and self.draw not in v.draws else 0) for v in self.viewers]
        missed = [
            f"viewer {i} (hub {v.idx % len(self.bases)}, {v.resumes} resumes): {sorted(want - v.texts)[:4]}"
            for i, v in enumerate(self.viewers)
            if want - v.texts
        ]
        shown = {tx for v in self.viewers for tx in v.texts}
        # answered `unavailable` yet published: shown at a seq other than the one a retry
        # was acked with (or shown though never acked)
        acked_seq = {**self.comments.seq, **self.notices.seq}
        applied = [
            tx
            for tx in set(self.comments.unavailable + self.notices.unavailable)
            if tx in shown and any(seq != acked_seq.get(tx) for v in self.viewers for _, seq in v.where.get(tx, ()))
        ]
        twice = {tx for v in self.viewers for tx, at in v.where.items() if len(at) > 1}
        ok = [(u, r) for u, r in self.buy_final if r.get("ok")]
        oversells = max(0, len(ok) - self.s.stock) if self.with_sale else 0
        shop = token("shop", role="shop")
        found: set[str] = set()
        lost_orders = 0
        for user, r in ok:
            oid = r["order"]
            st, body = await http("GET", f"{base}/api/orders/{oid}", shop)
            if st != 200 or body["order"].get("user") != user or oid in found:
                lost_orders += 1
            found.add(oid)
        return {
            "lost_after": sum(len(after - v.texts) for v in self.viewers),
            "lost": sum(lost_each),
            "lost_viewers": sum(1 for x in lost_each if x),
            "missed": missed,
            "oversells": oversells,
            "orders_lost": lost_orders,
            "orders_ok": len(ok),
            "unanswered": self.noreply,
            "applied": len(applied),
            "twice": len(twice),
            "retried": self.comments.retried + self.notices.retried,
            "refused": sum(n for c, n in self.comments.codes.items() if c != "ok") + sum(n for c, n in self.notices.codes.items() if c != "ok"),
            "ops": sum(self.comments.codes.values()) + sum(self.notices.codes.values()),
            "codes": dict(self.comments.codes + self.notices.codes),
            "buys_first": dict(self.buy_first),
            "resets": sum(v.resets for v in self.viewers),
            "resumes": sum(v.resumes for v in self.viewers),
            "draw_note": draw_note,
        }

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(v.close() for v in self.viewers), return_exceptions=True)
        await asyncio.gather(*(a.close() for a in [self.host, self.commenter, self.liker, *self.buyers]), return_exceptions=True)

    def describe(self) -> str:
        s = self.s
        return (
            f"{s.comment_rate:g} comments/s, {s.notice_rate:g} notices/s, {5 * s.like_rate:g} likes/s, "
            f"{len(self.buyers)} buys on stock {s.stock}, a draw, {len(self.viewers)} resuming viewers"
        )


# -- results --------------------------------------------------------------------------------


@dataclass
class Result:
    fault: str
    load: str
    lost: int = 0
    lost_viewers: int = 0
    oversells: int = 0
    orders_lost: int = 0
    orders_ok: int = 0
    unanswered: int = 0
    hub_crashes: int = 0
    recover_s: float | None = None
    other: str = "-"
    other_ok: bool = True
    applied: int = 0
    twice: int = 0  # ops retried with their key after `unavailable` and shown twice
    lost_after: int = 0  # of `lost`, events acked after the fault ended
    resets: int = 0  # fresh welcomes (a room started over: Redis lost its data)
    notes: list[str] = field(default_factory=list)

    HEADER = (
        "| fault | load during it | durable events lost (viewers who resume) | oversells | confirmed orders lost "
        "| buys unanswered | hub crashes | time to recover | room on another shard | `unavailable` yet applied | shown twice after a keyed retry | notes |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )

    def row(self) -> str:
        rec = "-" if self.recover_s is None else f"{self.recover_s:.1f} s"
        lost = f"{self.lost} ({self.lost_viewers} viewers)" if self.lost else "0"
        orders = f"{self.orders_lost} of {self.orders_ok}"
        return (
            f"| {self.fault} | {self.load} | {lost} | {self.oversells} | {orders} | {self.unanswered} | {self.hub_crashes} "
            f"| {rec} | {self.other} | {self.applied} | {self.twice} | {'; '.join(self.notes)} |"
        )


def table(results: list[Result]) -> str:
    return "\n".join([Result.HEADER, *(r.row() for r in results)])


def _other(a: dict[str, Any]) -> tuple[str, bool]:
    ok = a["refused"] == 0 and a["lost"] == 0 and a["unanswered"] == 0
    if ok:
        return "unaffected", True
    codes = ", ".join(f"{c} {n}" for c, n in sorted(a["codes"].items()) if c != "ok")
    return f"{a['refused']} of {a['ops']} ops refused ({codes}), {a['lost']} events lost, {a['unanswered']} unanswered", False


def _fill(res: Result, a: dict[str, Any], other: dict[str, Any] | None) -> Result:
    res.lost, res.lost_viewers, res.lost_after, res.resets = a["lost"], a["lost_viewers"], a["lost_after"], a["resets"]
    res.oversells, res.orders_lost, res.orders_ok = a["oversells"], a["orders_lost"], a["orders_ok"]
    res.unanswered, res.applied, res.twice = a["unanswered"], a["applied"], a["twice"]
    if other is not None:
        res.other, res.other_ok = _other(other)
    first = ", ".join(f"{k} {v}" for k, v in sorted(a["buys_first"].items()))
    res.notes.append(f"first buy answers: {first}")
    if a["retried"]:
        res.notes.append(f"{a['retried']} comment/notice retries")
    if a["resumes"]:
        res.notes.append(f"{a['resumes']} resumes")
    if a["resets"]:
        res.notes.append(f"{a['resets']} fresh welcomes")
    if a["missed"]:
        res.notes.append("missed: " + "; ".join(a["missed"][:2]))
    if a["draw_note"]:
        res.notes.append(a["draw_note"])
    return res


def note_crashes(res: Result, hubs: list[HubProcess], killed: frozenset[int] = frozenset()) -> None:
    """Hubs that exited by themselves (not `killed` by the fault), and the Traceback lines
    in the living hubs' logs, into `res`."""
    res.hub_crashes = sum(1 for i, h in enumerate(hubs) if i not in killed and h.proc is not None and h.proc.poll() is not None)
    tracebacks = sum(h.log().count("Traceback") for i, h in enumerate(hubs) if i not in killed)
    if tracebacks:
        res.notes.append(f"{tracebacks} tracebacks in hub logs")


# -- topology -------------------------------------------------------------------------------


@dataclass
class Env:
    """Two standalone shards (the first with an AOF when asked) and hubs on both."""

    shards: list[RedisProcess]
    hubs: list[HubProcess]
    binary: str

    @classmethod
    def standalone(cls, hubs: int = 2, aof: bool = False, **env: str) -> "Env":
        binary = find_server()
        shards = [RedisProcess(binary, aof=aof).start(), RedisProcess(binary).start()]
        urls = ",".join(s.url for s in shards)
        hs: list[HubProcess] = []
        try:
            for _ in range(hubs):
                hs.append(HubProcess({"LIVEROOM_REDIS": urls, **HUB_ENV, **env}).start())
        except BaseException:
            for h in hs:
                h.stop()
            for s in shards:
                s.stop()
            raise
        return cls(shards, hs, binary)

    @property
    def bases(self) -> list[str]:
        return [h.base for h in self.hubs]

    def restart_shard(self, i: int, keep_data: bool) -> None:
        old = self.shards[i]
        if keep_data:
            self.shards[i] = RedisProcess(self.binary, port=old.port, aof=True, dir=old.dir).start()
        else:
            old.stop()  # already dead: removes its files
            self.shards[i] = RedisProcess(self.binary, port=old.port).start()

    def stop(self) -> None:
        for h in self.hubs:
            h.stop()
        for s in self.shards:
            s.stop()


async def _settle_and_audit(
    load: RoomLoad, other: RoomLoad | None, base: str, fault_end: float, s: Settings
) -> tuple[dict[str, Any], dict[str, Any] | None, float | None]:
    """Keep the load going until the room acks comments again (or settle_s), then stop and audit."""
    deadline = time.monotonic() + t(s.settle_s)
    while load.recovered_after(fault_end) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # a little load after recovery too
    rooms = [load] + ([other] if other else [])
    for r in rooms:
        await r.halt()
    # for what is in flight or being repaired, all told: a hub retries a history read Redis
    # cannot answer for up to resync.RETRY_S (a failover's election) before it gives up and
    # sends a fresh welcome, and later events wait behind the gap meanwhile
    until = time.monotonic() + t(RETRY_S + 2)
    for r in rooms:
        await r.wait_delivered(until)
    # the draw closes by itself; give its result time to arrive
    if load.draw:
        while time.monotonic() < until and not all(load.draw in v.draws for v in load.viewers):
            st, _ = await http("GET", f"{base}/api/rooms/{load.room}/draws/{load.draw}", token("admin", role="admin"))
            if st == 404:  # gone with the shard's data: nothing to wait for
                break
            await asyncio.sleep(0.3)
    a = await load.audit(base, fault_end)
    b = await other.audit(base) if other else None
    return a, b, load.recovered_after(fault_end)


# -- the faults -----------------------------------------------------------------------------


async def _shard_fault(s: Settings, env: Env, prefix: str, name: str, buys_s: float, fault: Callable[[], Awaitable[None]]) -> Result:
    """A busy room on shard 0 and a calm one on shard 1, load in flight, then `fault` on
    shard 0, then the audit of both rooms."""
    load = RoomLoad(room_on_shard(0, 2, prefix), env.bases, s)
    other = RoomLoad(room_on_shard(1, 2, "calm"), env.bases, s, sale=False, viewers=2)
    try:
        await load.setup(draw_s=2)
        await other.setup(draw_s=0)
        load.start()
        other.start()
        await asyncio.sleep(1.0)
        load.buys_over(buys_s)
        await asyncio.sleep(0.3)
        await fault()
        end = time.monotonic()
        a, b, rec = await _settle_and_audit(load, other, env.bases[0], end, s)
        res = _fill(Result(name, load.describe()), a, b)
        res.recover_s = rec
        note_crashes(res, env.hubs)
        return res
    finally:
        await load.close()
        await other.close()
        env.stop()


async def shard_kill(s: Settings, keep_data: bool) -> Result:
    """Faults 1 and 2: SIGKILL the shard of a busy room, restart it empty or from its AOF."""
    env = Env.standalone(aof=keep_data)

    async def fault() -> None:
        env.shards[0].kill()
        await asyncio.sleep(s.outage_s)
        env.restart_shard(0, keep_data)

    name = f"SIGKILL a shard, restart {'from its AOF' if keep_data else 'empty'} after {s.outage_s:g} s"
    return await _shard_fault(s, env, "kill", name, s.outage_s + 1, fault)


async def shard_stop(s: Settings) -> Result:
    """Fault 3: SIGSTOP the shard of a busy room for stop_s, then SIGCONT."""
    env = Env.standalone()

    async def fault() -> None:
        pid = env.shards[0].proc.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(s.stop_s)
        finally:
            os.kill(pid, signal.SIGCONT)

    return await _shard_fault(s, env, "stop", f"SIGSTOP a shard for {s.stop_s:g} s", s.stop_s, fault)


async def hub_kill(s: Settings) -> Result:
    """Fault 4: SIGKILL one of two hubs mid-sale and mid-draw; its users go to the other."""
    env = Env.standalone()
    load = RoomLoad(room_on_shard(0, 2, "hubk"), env.bases, s)
    try:
        await load.setup(draw_s=3)
        load.start()
        await asyncio.sleep(1.0)
        load.buys_over(2.0)
        await asyncio.sleep(0.5)
        env.hubs[1].kill()  # the commenter, half the viewers and half the buyers are on it
        end = time.monotonic()
        a, _, rec = await _settle_and_audit(load, None, env.bases[0], end, s)
        res = _fill(Result("SIGKILL one of two hubs mid-sale and mid-draw", load.describe()), a, None)
        res.other = "n/a (same shard)"
        res.recover_s = rec
        note_crashes(res, env.hubs, killed=frozenset({1}))
        return res
    finally:
        await load.close()
        env.stop()


async def cluster_failover(s: Settings, how: str = "kill") -> Result:
    """Fault 5: a Redis Cluster master with a busy room fails over to its replica: SIGKILL of
    the master (`kill`: promotion after the node timeout) or CLUSTER FAILOVER TAKEOVER on the
    replica (`takeover`: at once, whatever the replica has)."""
    cluster = start_cluster()
    hubs: list[HubProcess] = []
    load = other = None
    try:
        seeds = ",".join(n.url for n in cluster.nodes)
        hubs = [HubProcess({"LIVEROOM_REDIS_CLUSTER": seeds, **HUB_ENV}).start() for _ in range(2)]
        bases = [h.base for h in hubs]
        load = RoomLoad(room_on_master(cluster, 0, "fo"), bases, s)
        other = RoomLoad(room_on_master(cluster, 1, "calm"), bases, s, sale=False, viewers=2)
        await load.setup(draw_s=3)
        await other.setup(draw_s=0)
        load.start()
        other.start()
        await asyncio.sleep(1.0)
        load.buys_over(3.0)
        await asyncio.sleep(0.3)
        if how == "kill":
            cluster.nodes[0].kill()
        else:
            await takeover(cluster.replica_nodes[0].port, lag_s=1.5 if how == "lag" else 0.0)
        end = time.monotonic()
        a, b, rec = await _settle_and_audit(load, other, bases[0], end, s)
        what = {
            "kill": "SIGKILL of the master",
            "takeover": "CLUSTER FAILOVER TAKEOVER",
            "lag": "TAKEOVER by a replica cut off for 1.5 s",
        }[how]
        res = _fill(Result(f"Redis Cluster master fails over to its replica ({what})", load.describe()), a, b)
        res.recover_s = rec
        note_crashes(res, hubs)
        return res
    finally:
        if load:
            await load.close()
        if other:
            await other.close()
        for h in hubs:
            h.stop()
        cluster.stop()


def start_cluster(tries: int = 3) -> RedisClusterProcesses:
    """3 masters with a replica each. A node on a port another process took between the
    pick and the bind exits at start (a busy shared machine): try again on other ports."""
    for i in range(tries):
        try:
            c = RedisClusterProcesses(find_server(), masters=3, replicas=1).start()
        except RuntimeError:
            if i == tries - 1:
                raise
            continue
        # as a deployment that keeps a master's failure to its own slots should: with the
        # default (yes), every node answers CLUSTERDOWN while one master's slots are uncovered,
        # so rooms on the healthy masters get `unavailable` too
        for n in c.nodes + c.replica_nodes:
            with redis.Redis(host="127.0.0.1", port=n.port) as r:
                r.config_set("cluster-require-full-coverage", "no")
        return c
    raise AssertionError("unreachable")


async def takeover(port: int, lag_s: float) -> None:
    """CLUSTER FAILOVER TAKEOVER on the replica at `port`. With `lag_s`, its replication link
    is cut for that long first (it is told to log in to its master as a user that does not
    exist, then its link is killed: it cannot resync), so the replica is promoted without the
    writes of that time, as after a network split: replication is asynchronous."""
    r = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        if lag_s:
            await r.execute_command("CONFIG", "SET", "masteruser", "chaos-nobody", "masterauth", "chaos-wrong")
            await r.execute_command("CLIENT", "KILL", "TYPE", "master")
            await asyncio.sleep(lag_s)
        await r.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        if lag_s:
            await r.execute_command("CONFIG", "SET", "masteruser", "", "masterauth", "")
    finally:
        await r.aclose()


# -- fault 6: one socket that never reads, a crowd that does ----------------------------------


async def slow_byes(base: str) -> float:
    """The hub's count of `bye slow`: the stalled socket cannot tell us (reading would drain it)."""
    st, text = await http_text(base + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith('liveroom_byes_total{reason="slow"}'))


async def http_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as r:
            return r.status, await r.text()


class Crowd:
    """Many light viewers (bench/wsclient.py): each counts the notices it is sent. A batch is
    decoded once per distinct payload, so thousands of sockets cost little in this process."""

    def __init__(self) -> None:
        self.seen: list[set[str]] = []
        self.closed = 0
        self.socks: list[Any] = []
        self._last: tuple[bytes, list[str]] = (b"", [])

    def _texts(self, payload: bytes) -> list[str]:
        if payload == self._last[0]:
            return self._last[1]
        f = msgpack.unpackb(payload)
        texts = [e["text"] for e in f.get("events", ()) if e.get("type") == "notice"] if f.get("t") == "batch" else []
        self._last = (payload, texts)
        return texts

    async def join(self, port: int, room: str, n: int) -> None:
        from bench.wsclient import connect

        def on_close(_c: Any) -> None:
            self.closed += 1

        async def one(i: int) -> None:
            seen: set[str] = set()
            self.seen.append(seen)

            def on_message(_c: Any, _op: int, payload: bytes, seen: set[str] = seen) -> None:
                seen.update(self._texts(payload))

            # permessage-deflate: the hub compresses each batch once for all of them, and the
            # repetitive notices cost the crowd little; the stalled socket gets them raw
            self.socks.append(await connect("127.0.0.1", port, "/ws", {"room": room}, on_message, on_close, deflate=True))

        for lo in range(0, n, 200):
            await asyncio.gather(*(one(i) for i in range(lo, min(n, lo + 200))))

    def close(self) -> None:
        for c in self.socks:
            c.close()


async def slow_socket(s: Settings) -> Result:
    """Fault 6: one viewer's socket fills (it never reads) while `crowd` others watch notices.
    Outbox set to 16 KiB so that the stalled socket fills in seconds at a light load."""
    binary = find_server()
    shard = RedisProcess(binary).start()
    hub = HubProcess({"LIVEROOM_REDIS": shard.url, "LIVEROOM_OUTBOX_BYTES": "16384", **HUB_ENV}).start()
    room = "crowd" + uuid.uuid4().hex[:8]
    crowd = Crowd()
    host = Actor([hub.base], 0, room, token("host", role="host", rooms=[room]), s.reply_timeout_s)
    stalled: socket.socket | None = None
    notices = OpLog()
    try:
        await crowd.join(hub.port, room, s.crowd)
        stalled = stalled_viewer(hub.port, room, token("stalled"))
        stalled.setblocking(False)
        start = time.monotonic()
        cut_at: float | None = None
        i = 0
        body = "x" * 1900
        # crowd_s, or longer (up to twice, scaled) until the stalled socket is cut
        while time.monotonic() - start < s.crowd_s or (cut_at is None and time.monotonic() - start < t(2 * s.crowd_s)):
            # a burst that lands in one tick: one ~30 KB batch frame every 0.5 s, so the
            # stalled socket fills in seconds for few (compressed) frames to the crowd
            for _ in range(16):
                i += 1
                text = f"n{i} {body}"
                notices.record(text, await host.call("notice", text=text))
            if cut_at is None and await slow_byes(hub.base) > 0:
                cut_at = time.monotonic() - start
            await asyncio.sleep(0.5)
        sent_s = time.monotonic() - start
        want = {tx for tx, _ in notices.acked}
        deadline = time.monotonic() + t(15)
        while time.monotonic() < deadline and not all(want <= seen for seen in crowd.seen):
            await asyncio.sleep(0.2)
        lost_each = [len(want - seen) for seen in crowd.seen]
        res = Result(
            f"one viewer never reads while {s.crowd} others watch",
            f"{len(want)} notices of 2 KB (16 every 0.5 s) over {sent_s:.0f} s to {s.crowd + 1} viewers",
        )
        res.lost, res.lost_viewers = sum(lost_each), sum(1 for x in lost_each if x)
        res.recover_s = cut_at
        res.unanswered = notices.codes.get("_noreply", 0)
        note_crashes(res, [hub])
        res.other = "n/a"
        if notices.codes.keys() - {"ok"}:
            res.notes.append("notices refused: " + ", ".join(f"{c} {n}" for c, n in notices.codes.items() if c != "ok"))
        res.notes.append("time to recover = until the stalled socket was cut" if cut_at is not None else "stalled socket never cut")
        if crowd.closed:
            res.notes.append(f"{crowd.closed} crowd sockets closed")
        res.notes.append(f"hub RSS {rss_mb(hub):.0f} MB")
        return res
    finally:
        if stalled is not None:
            stalled.close()
        await host.close()
        crowd.close()
        hub.stop()
        shard.stop()


def rss_mb(h: HubProcess) -> float:
    try:
        with open(f"/proc/{h.proc.pid}/status") as f:  # type: ignore[union-attr]
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


FAULTS: dict[str, Callable[[Settings], Awaitable[Result]]] = {
    "kill-empty": lambda s: shard_kill(s, keep_data=False),
    "kill-aof": lambda s: shard_kill(s, keep_data=True),
    "stop": shard_stop,
    "hub-kill": hub_kill,
    "failover": cluster_failover,
    "failover-lag": lambda s: cluster_failover(s, how="lag"),
    "slow-socket": slow_socket,
}
