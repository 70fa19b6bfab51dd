"""Faults and limits: Redis stalls, idle sockets, a hub-wide bound on what waits for slow
sockets. Real Redis processes (our own where a test stops one), real hubs, real sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from typing import Callable

import aiohttp

from liveroom.core.likes import next_flush
from liveroom.core.room import Room
from liveroom.core.rules import CommentSampler
from liveroom.redis_local import RedisClusterProcesses, RedisProcess, find_server
from liveroom.web.outbox import HubOutbox, shed_order
from tests.support import Client, HubProcess, eventually, http, server_frames, stalled_viewer, t, token
from tests.test_slow_viewer import metric

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0"}


def room(prefix: str = "fault") -> str:
    return prefix + uuid.uuid4().hex[:8]


def read_frames(sock: socket.socket, until: Callable[[list[tuple[int, bytes]]], bool]) -> list[tuple[int, bytes]]:
    """A raw client reads server frames (opcode, payload) until `until` says so, or the
    socket ends: then (-1, b"") closes the list."""
    sock.settimeout(t(10))
    data, frames = b"", []
    while not until(frames):
        try:
            chunk = sock.recv(1 << 16)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            frames.append((-1, b""))
            break
        got, data = server_frames(data + chunk)
        frames += got
    return frames


def latest(c: Client, kind: str, field: str) -> int | None:
    values = [e[field] for e in c.of_type(kind)]
    return values[-1] if values else None


async def test_likes_resent_after_a_timed_out_flush_count_once(start_hub: Callable[..., HubProcess]) -> None:
    """Taps arrive while the shard is stopped (SIGSTOP): the hub's flushes time out and are
    sent again, each on an open connection, and Redis runs every copy it has read once it
    resumes. The room total counts the taps once."""
    shard = RedisProcess(find_server()).start()  # our own: this test pauses it
    try:
        h = start_hub(LIVEROOM_REDIS=shard.url, **FAST)
        r = room("likes")
        admin = token("admin", role="admin")
        viewer = await Client.connect(h.base, r, token("v"))
        await viewer.send({"t": "like", "n": 1})  # the script is loaded (a NOSCRIPT would not run)
        await viewer.wait_for(lambda: latest(viewer, "likes", "total") == 1, what="1 like")
        # open connections in the hub's pool, as a busy hub has: a flush sent on a connection
        # opened during the stall would wait for its handshake and never reach Redis
        await asyncio.gather(*(http("GET", f"{h.base}/api/rooms/{r}", admin) for _ in range(16)))
        assert shard.proc is not None
        os.kill(shard.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(3):
                await viewer.send({"t": "like", "n": 10})
            await asyncio.sleep(2.5)  # several flushes time out (0.8 s) and are re-sent meanwhile
        finally:
            os.kill(shard.proc.pid, signal.SIGCONT)
        await viewer.wait_for(lambda: latest(viewer, "likes", "total") == 31, timeout=10, what="31 likes")
        await viewer.send({"t": "like", "n": 1})
        await viewer.wait_for(lambda: latest(viewer, "likes", "total") == 32, timeout=10, what="32 likes")
        status, stats = await http("GET", f"{h.base}/api/rooms/{r}", admin)
        assert status == 200 and stats["likes"] == 32, stats
        assert max(e["total"] for e in viewer.of_type("likes")) == 32, viewer.of_type("likes")
        await viewer.close()
    finally:
        shard.stop()


def test_a_flush_that_was_not_answered_is_sent_again_as_it_was() -> None:
    """core/likes.py: the unanswered flush goes again with its id and taps; taps that came
    meanwhile wait for the next flush; none while one is in flight."""
    r = Room("r", CommentSampler(0, 100))
    assert not next_flush(r)
    r.local_likes = 5
    assert next_flush(r)
    first = r.likes_flush
    assert first is not None and first[1] == 5 and r.local_likes == 0
    r.local_likes = 3  # more taps while the flush is unanswered (it timed out)
    assert next_flush(r) and r.likes_flush == first and r.local_likes == 3
    r.likes_busy = True
    assert not next_flush(r)
    r.likes_busy, r.likes_flush = False, None  # answered
    assert next_flush(r)
    second = r.likes_flush
    assert second is not None and second[1] == 3 and second[0] != first[0]


async def test_a_join_refused_while_redis_is_down_says_when_to_retry(start_hub: Callable[..., HubProcess]) -> None:
    """The room's shard does not answer: the handshake is refused 503 `unavailable` with
    `retry_ms` (limits.retry_ms to twice that) and Retry-After, so clients back off."""
    shard = RedisProcess(find_server()).start()  # our own: this test pauses it
    try:
        h = start_hub(LIVEROOM_REDIS=shard.url, LIVEROOM_RETRY_MS="3000", **FAST)
        r = room("down")
        assert shard.proc is not None
        os.kill(shard.proc.pid, signal.SIGSTOP)
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{h.base}/ws", params={"room": r, "token": token("v")}) as resp:
                    assert resp.status == 503
                    body = await resp.json()
                    retry_after = resp.headers.get("Retry-After")
        finally:
            os.kill(shard.proc.pid, signal.SIGCONT)
        assert body["error"]["code"] == "unavailable"
        assert 3000 <= body["error"]["retry_ms"] <= 6000, body
        assert retry_after is not None and int(retry_after) * 1000 >= body["error"]["retry_ms"]
        c = await Client.connect(h.base, r, token("v"))  # and once it is back, the join works
        await c.close()
    finally:
        shard.stop()


def test_shed_order_sends_away_the_sockets_holding_the_most_first() -> None:
    held = [("a", 100), ("b", 700), ("c", 300), ("d", 0)]
    assert shed_order(held, 1100, 1000) == ["b"]
    assert shed_order(held, 1100, 200) == ["b", "c"]
    assert shed_order(held, 1100, 1100) == []


async def test_hub_outbox_keeps_a_running_total_and_sheds_past_the_budget() -> None:
    gone: list[str] = []
    box = HubOutbox(1000, gone.append)
    box.moved("a", 400)
    box.moved("b", 500)
    box.moved("a", 300)  # a drained a little
    assert box.total == 800 and not gone
    box.moved("c", 350)  # 1150: over the budget; shed on the next loop iteration
    assert not gone
    await asyncio.sleep(0)
    assert gone == ["b"] and box.total == 650 and set(box.heavy) == {"a", "c"}
    box.moved("a", 0)
    box.moved("c", 0)
    assert box.total == 0 and not box.heavy


async def test_hub_outbox_budget_sends_the_slowest_socket_away_first(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    """Two phones stop reading, one long before the other: together they hold more than the
    hub's budget (each is well within its own limit), so the one holding the most gets
    `bye slow`; the other stays, and a viewer who reads gets every notice."""
    h = start_hub(
        LIVEROOM_REDIS=redis1.url, LIVEROOM_OUTBOX_BYTES=str(1 << 20), LIVEROOM_HUB_OUTBOX_BYTES=str(1200 << 10), **FAST
    )
    r = room("budget")
    host = await Client.connect(h.base, r, token("h", role="host", rooms=[r]))
    good = await Client.connect(h.base, r, token("good"))
    first = stalled_viewer(h.port, r, token("first"))
    second: socket.socket | None = None
    text = "x" * 1900
    try:
        for i in range(300):
            assert (await host.call("notice", text=f"{i} {text}"))["ok"]

        async def shown() -> bool:  # the gauge operators graph and alert on (docs/deploy.md)
            return await metric(h.base, "liveroom_outbox_bytes") > 200_000

        # ~570 KB sent to a socket that reads nothing: most of it waits in the hub
        await eventually(shown, what="liveroom_outbox_bytes to show what the stalled socket holds")
        second = stalled_viewer(h.port, r, token("second"))
        for i in range(300, 700):
            assert (await host.call("notice", text=f"{i} {text}"))["ok"]
        await good.wait_for(lambda: len(good.of_type("notice")) == 700, timeout=20, what="700 notices")

        async def slow_byes() -> float:
            return await metric(h.base, 'liveroom_byes_total{reason="slow"}')

        await eventually(slow_byes, what="a socket sent away")
        assert await slow_byes() == 1
        # the one holding the most was sent away; the other is still served: it reads its
        # backlog, then a notice sent now
        assert (await asyncio.to_thread(read_frames, first, lambda fs: False))[-1] == (-1, b"")
        assert (await host.call("notice", text="after"))["ok"]
        got = await asyncio.to_thread(read_frames, second, lambda fs: any(b"after" in p for _, p in fs))
        assert all(op != 8 for op, _ in got) and any(b"after" in p for _, p in got)
        assert not good.closed.is_set()
    finally:
        first.close()
        if second is not None:
            second.close()
        await host.close()
        await good.close()


class BlackholeProxy:
    """A TCP proxy in front of Redis that can turn the pub/sub connections passing through
    it half-open: from `freeze_subscribers()` on, their bytes are dropped both ways while
    both sockets stay up (what a NAT or firewall that forgot a connection does)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.pairs: list[dict[str, bool]] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        pair = {"sub": False, "frozen": False}
        self.pairs.append(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await src.read(65536):
                    if upstream and b"SUBSCRIBE" in data.upper():
                        pair["sub"] = True
                    if not pair["frozen"]:
                        dst.write(data)
                        await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w, True), pipe(up_r, writer, False))

    def freeze_subscribers(self) -> int:
        frozen = [p for p in self.pairs if p["sub"]]
        for p in frozen:
            p["frozen"] = True
        return len(frozen)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_half_open_pubsub_connection_is_found_and_the_gap_repaired(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    """The hub's pub/sub socket goes half-open (nothing arrives, nothing says so) while
    notices go on being published: its liveness probe does not come back, the listener
    reconnects and resubscribes, and the viewer gets the notices published meanwhile, in
    order, once each, and the ones after."""
    proxy = BlackholeProxy(int(redis1.url.rsplit(":", 1)[1].split("/")[0]))
    port = await proxy.start()
    try:
        h = start_hub(
            LIVEROOM_REDIS=f"redis://127.0.0.1:{port}/0", LIVEROOM_PROBE_INTERVAL_MS="300",
            LIVEROOM_PROBE_TIMEOUT_MS="1500", **FAST,
        )  # fmt: skip
        r = room("halfopen")
        host = await Client.connect(h.base, r, token("h", role="host", rooms=[r]))
        viewer = await Client.connect(h.base, r, token("v"))
        assert (await host.call("notice", text="before"))["ok"]
        await viewer.wait_for(lambda: len(viewer.of_type("notice")) == 1, what="the first notice")
        assert proxy.freeze_subscribers() == 1
        for i in range(3):
            assert (await host.call("notice", text=f"during {i}"))["ok"]  # published: the pool is fine
        await viewer.wait_for(lambda: len(viewer.of_type("notice")) == 4, timeout=10, what="the notices of the gap")
        assert (await host.call("notice", text="after"))["ok"]
        await viewer.wait_for(lambda: len(viewer.of_type("notice")) == 5, timeout=10, what="the notice after")
        notices = viewer.of_type("notice")
        assert [e["text"] for e in notices] == ["before", "during 0", "during 1", "during 2", "after"]
        assert [e["seq"] for e in notices] == sorted({e["seq"] for e in notices})
        assert "no probe back" in h.log()
        await host.close()
        await viewer.close()
    finally:
        proxy.close()


async def test_probes_come_back_on_a_cluster_node(
    start_hub: Callable[..., HubProcess], cluster3: RedisClusterProcesses
) -> None:
    """On a Redis Cluster the listeners hold shard channels; the probe is a plain channel on
    the same connection and comes back: no healthy connection is ever dropped."""
    h = start_hub(
        LIVEROOM_REDIS_CLUSTER=cluster3.url, LIVEROOM_PROBE_INTERVAL_MS="100", LIVEROOM_PROBE_TIMEOUT_MS="500", **FAST
    )
    viewers = [await Client.connect(h.base, room("cl"), token("v")) for _ in range(6)]  # rooms on every master
    await asyncio.sleep(2.0)  # four probe timeouts: a probe that never came back would show
    assert "no probe back" not in h.log()
    for c in viewers:
        await c.close()
