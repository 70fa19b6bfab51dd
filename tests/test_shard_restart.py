"""A Redis shard that restarts empty: its rooms start over under a new epoch, and the
viewers connected to them are told (a fresh `welcome`), lose no event of the new epoch and
keep an online count that is right."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, Callable

from liveroom.broker.sharding import shard_of
from liveroom.redis_local import RedisProcess, find_server
from tests.support import Client, HubProcess, token

FAST = {"LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0", "LIVEROOM_VIEWER_COMMENT_CAP": "0"}
VIEWERS_PER_HUB = 8


def room_on(shard: int, shards: int) -> str:
    while True:
        r = "restart" + uuid.uuid4().hex[:8]
        if shard_of(r, shards) == shard:
            return r


def after_reset(c: Client, first_epoch: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The fresh welcome of the new epoch (if any) and the events that followed it."""
    welcome = None
    events: list[dict[str, Any]] = []
    for f in c.frames:
        if f["t"] == "welcome" and f["epoch"] != first_epoch:
            welcome, events = f, []
        elif f["t"] == "batch" and welcome is not None:
            events.extend(f["events"])
    return welcome, events


def strictly_increasing(seqs: list[int]) -> bool:
    return all(a < b for a, b in zip(seqs, seqs[1:]))


async def test_shard_restarted_empty(start_hub: Callable[..., HubProcess]) -> None:
    binary = find_server()
    shards = [RedisProcess(binary).start() for _ in range(2)]
    urls = ",".join(s.url for s in shards)
    hubs = [start_hub(LIVEROOM_REDIS=urls, **FAST) for _ in range(2)]
    room = room_on(0, 2)
    host = await Client.connect(hubs[0].base, room, token("host", role="host", rooms=[room]))
    talker = await Client.connect(hubs[1].base, room, token("talker"))
    viewers = [
        await Client.connect(hubs[i % 2].base, room, token(f"v{i}"), codec="json" if i % 3 == 0 else "msgpack")
        for i in range(2 * VIEWERS_PER_HUB)
    ]
    everyone = [host, talker, *viewers]
    first_epoch = viewers[0].welcome["epoch"]
    acked_new: list[str] = []  # comments acknowledged after the shard came back
    restarted = asyncio.Event()
    stop = asyncio.Event()

    async def talk() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            text = f"c{i}"
            back = restarted.is_set()
            r = await talker.call("comment", text=text)
            if r["ok"] and back:
                acked_new.append(text)
            await asyncio.sleep(0.1)

    try:
        r = await host.call("sale_create", sku="A1", title="Shirt", price=9900, stock=100, limit=1)
        assert r["ok"], r
        for v in viewers:
            await v.wait_for(lambda v=v: v.of_type("sale"), what="the sale")
        talking = asyncio.create_task(talk())
        await talker.wait_for(lambda: len(talker.of_type("comment")) >= 5, what="comments flowing before the kill")
        port = shards[0].port
        shards[0].proc.kill()  # type: ignore[union-attr]
        shards[0].proc.wait()  # type: ignore[union-attr]
        # the outage itself, not a wait: long enough for the hubs' calls and pub/sub
        # reconnects to fail against the dead shard (redis timeout 0.8 s, several rounds)
        await asyncio.sleep(3)
        shards[0] = RedisProcess(binary, port=port).start()  # empty: no persistence
        restarted.set()
        await talker.wait_for(lambda: len(acked_new) >= 20, timeout=30, what="20 comments after the restart")
        stop.set()
        await talking

        for v in viewers:
            await v.wait_for(
                lambda v=v: {e.get("text") for e in after_reset(v, first_epoch)[1]} >= set(acked_new),
                timeout=10,
                what="every comment of the new epoch",
            )
            welcome, events = after_reset(v, first_epoch)
            assert welcome is not None and welcome["recovered"] is False
            assert welcome["state"]["sales"] == []  # the sale went with the shard's data
            # seqs never go backwards within an epoch, and nothing of the new one is missing
            before = [e["seq"] for e in v.events[: len(v.events) - len(events)] if "seq" in e]
            new = [e["seq"] for e in events if "seq" in e]
            assert strictly_increasing(before) and strictly_increasing(new)
            assert new == list(range(1, len(new) + 1)), new

        # every user still connected is counted again, on both hubs
        n = len(everyone)
        for c in everyone:
            await c.wait_for(lambda c=c: [e["count"] for e in c.of_type("online")][-1:] == [n], timeout=10, what=f"online {n}")
        for h in hubs:
            assert "Traceback" not in h.log()
    finally:
        stop.set()
        for c in everyone:
            with contextlib.suppress(Exception):
                await c.close()
        for s in shards:
            s.stop()


async def test_shard_restarted_from_its_aof_keeps_the_room(start_hub: Callable[..., HubProcess]) -> None:
    """With persistence the same crash is no reset: seqs continue, no welcome again, the
    sale and its orders are still there, and a retried buy gets its first answer."""
    binary = find_server()
    shards = [RedisProcess(binary, aof=True).start(), RedisProcess(binary).start()]
    urls = ",".join(s.url for s in shards)
    hubs = [start_hub(LIVEROOM_REDIS=urls, **FAST) for _ in range(2)]
    room = room_on(0, 2)
    host = await Client.connect(hubs[0].base, room, token("host", role="host", rooms=[room]))
    buyer = await Client.connect(hubs[1].base, room, token("buyer"))
    viewers = [await Client.connect(hubs[i % 2].base, room, token(f"v{i}")) for i in range(6)]
    everyone = [host, buyer, *viewers]
    try:
        sale = (await host.call("sale_create", sku="A1", title="Shirt", price=9900, stock=5, limit=1))["sale"]
        first = await buyer.call("buy", sale=sale, qty=1, key="k1")
        assert first["ok"], first
        acked = [(await buyer.call("comment", text=f"before {i}"))["seq"] for i in range(3)]
        port, dir_ = shards[0].port, shards[0].dir
        shards[0].kill()
        await asyncio.sleep(2)
        shards[0] = RedisProcess(binary, port=port, aof=True, dir=dir_).start()
        for i in range(3):
            r = await buyer.call("comment", text=f"after {i}")
            while not r["ok"]:  # the hubs' pools reconnect on their next call
                assert r["error"]["code"] == "unavailable", r
                await asyncio.sleep(0.2)
                r = await buyer.call("comment", text=f"after {i}")
            acked.append(r["seq"])
        assert acked == list(range(acked[0], acked[0] + 6))  # the seqs went on
        again = await buyer.call("buy", sale=sale, qty=1, key="k1")
        assert again["ok"] and again["order"] == first["order"]  # the first answer, no second unit
        other = await host.call("buy", sale=sale, qty=1, key="h1")
        assert other["ok"] and other["remaining"] == 3
        for v in viewers:
            await v.wait_for(lambda v=v: {e["seq"] for e in v.of_type("comment")} >= set(acked), timeout=10, what="every comment")
            assert not [f for f in v.frames if f["t"] == "welcome"]  # never started over
            seqs = [e["seq"] for e in v.events if "seq" in e]
            assert strictly_increasing(seqs)
    finally:
        for c in everyone:
            with contextlib.suppress(Exception):
                await c.close()
        for s in shards:
            s.stop()
