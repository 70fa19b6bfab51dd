"""Comments fan out to every viewer on every hub, in one seq order, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from typing import Callable

from liveroom.broker.sharding import shard_of
from liveroom.redis_local import RedisClusterProcesses, RedisProcess
from tests.support import Client, HubProcess, token

CAPS_OFF = {"LIVEROOM_VIEWER_COMMENT_CAP": "0", "LIVEROOM_COMMENT_RATE": "0", "LIVEROOM_FRAME_RATE": "0"}


def rooms_on_each_shard(shards: int, per_shard: int = 1) -> list[str]:
    """Room ids covering every shard, so that both shards carry traffic."""
    found: dict[int, list[str]] = {i: [] for i in range(shards)}
    base = uuid.uuid4().hex[:8]
    i = 0
    while any(len(v) < per_shard for v in found.values()):
        room = f"r{base}-{i}"
        idx = shard_of(room, shards)
        if len(found[idx]) < per_shard:
            found[idx].append(room)
        i += 1
    return [r for v in found.values() for r in v]


async def cross_hub_comments(hubs: list[HubProcess], rooms: list[str], per_sender: int = 30) -> None:
    viewers: dict[str, list[Client]] = {}
    senders: dict[str, list[Client]] = {}
    for room in rooms:
        viewers[room] = [
            await Client.connect(h.base, room, token(f"v{i}-{h.port}")) for h in hubs for i in range(3)
        ]
        senders[room] = [await Client.connect(h.base, room, token(f"s-{h.port}")) for h in hubs]
    try:

        async def send_all(c: Client, room: str) -> list[int]:
            seqs = []
            for n in range(per_sender):
                r = await c.call("comment", text=f"{room} {c.welcome['user']['id']} #{n}")
                assert r["ok"], r
                seqs.append(r["seq"])
            return seqs

        order = [room for room in rooms for _ in senders[room]]
        results = await asyncio.gather(*(send_all(c, room) for room in rooms for c in senders[room]))
        acked: dict[str, list[int]] = {room: [] for room in rooms}
        for room, seqs in zip(order, results):
            acked[room].extend(seqs)
        for room in rooms:
            expected = per_sender * len(hubs)
            everyone = viewers[room] + senders[room]
            for c in everyone:
                await c.wait_for(lambda c=c: len(c.of_type("comment")) >= expected, what=f"comments in {room}")
            orders = [[(e["seq"], e["text"]) for e in c.of_type("comment")] for c in everyone]
            first = orders[0]
            assert len(first) == expected, "lost or duplicated comments"
            assert [s for s, _ in first] == sorted(s for s, _ in first), "not in seq order"
            assert len({s for s, _ in first}) == expected, "duplicate seq"
            for o in orders[1:]:
                assert o == first, "two viewers saw different comment streams"
            # seqs are per room: within one, every acknowledged comment has its own seq, and
            # the viewers got exactly the acknowledged ones
            assert len(set(acked[room])) == expected, f"two comments in {room} acknowledged with one seq"
            assert [s for s, _ in first] == sorted(acked[room]), "viewers' seqs differ from the acknowledged ones"
    finally:
        for cs in list(viewers.values()) + list(senders.values()):
            for c in cs:
                await c.close()


async def test_two_hubs_two_shards(start_hub: Callable[..., HubProcess], shards2: list[RedisProcess]) -> None:
    """Viewers on two hubs over two Redis shards all get every comment, in the same order."""
    urls = ",".join(s.url for s in shards2)
    hubs = [start_hub(LIVEROOM_REDIS=urls, **CAPS_OFF) for _ in range(2)]
    await cross_hub_comments(hubs, rooms_on_each_shard(2))


async def test_two_hubs_redis_cluster(start_hub: Callable[..., HubProcess], cluster3: RedisClusterProcesses) -> None:
    """The same over a 3-master Redis Cluster with sharded pub/sub."""
    hubs = [start_hub(LIVEROOM_REDIS_CLUSTER=cluster3.url, **CAPS_OFF) for _ in range(2)]
    base = uuid.uuid4().hex[:6]
    await cross_hub_comments(hubs, [f"c{base}-{i}" for i in range(3)], per_sender=20)


async def test_json_and_msgpack_viewers_see_the_same(shared_hub: HubProcess) -> None:
    """A JSON viewer and a msgpack viewer in one room get the same events."""
    room = "r" + uuid.uuid4().hex[:8]
    a = await Client.connect(shared_hub.base, room, token("a"), codec="json")
    b = await Client.connect(shared_hub.base, room, token("b"))
    try:
        r = await a.call("comment", text="from json")
        assert r["ok"]
        r = await b.call("comment", text="from msgpack")
        assert r["ok"]
        for c in (a, b):
            await c.wait_for(lambda c=c: len(c.of_type("comment")) == 2, what="two comments")
        assert [e["text"] for e in a.of_type("comment")] == [e["text"] for e in b.of_type("comment")]
    finally:
        await a.close()
        await b.close()


async def test_deflate_and_plain_viewers_see_the_same(shared_hub: HubProcess) -> None:
    """A viewer that negotiated permessage-deflate and one that did not get the same events
    (the room batch is compressed once and shared by every deflate socket)."""
    room = "z" + uuid.uuid4().hex[:8]
    zipped = await Client.connect(shared_hub.base, room, token("a"))
    plain = await Client.connect(shared_hub.base, room, token("b"), compress=0)
    # offers server_max_window_bits=10: the hub compresses this socket's frames with a
    # 1 KB window, and this client compresses what it sends (inflated by the hub)
    small = await Client.connect(shared_hub.base, room, token("c"), compress=10)
    try:
        # (aiohttp's client reports its own window here, 15, whatever the hub's is)
        assert zipped.ws.compress == 15 and plain.ws.compress == 0 and small.ws.compress == 15
        for i in range(4):
            assert (await plain.call("comment", text=f"long comment {i} " + "ha" * 80))["ok"]
        assert (await small.call("comment", text="squeezed " + "ho" * 90))["ok"]
        for c in (zipped, plain, small):
            await c.wait_for(lambda c=c: len(c.of_type("comment")) == 5, what="five comments")
        assert zipped.of_type("comment") == plain.of_type("comment") == small.of_type("comment")
        assert zipped.of_type("comment")[-1]["text"] == "squeezed " + "ho" * 90
    finally:
        await zipped.close()
        await plain.close()
        await small.close()
