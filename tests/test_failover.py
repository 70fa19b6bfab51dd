"""A Redis Cluster master dies (SIGKILL) and its replica takes over: the rooms it served keep
their live events on every hub, a hub started meanwhile comes up from the other seeds, and
an order acked before the kill is still there (the buy waited for the replica)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from typing import Callable

from redis.crc import key_slot

from liveroom.redis_local import RedisClusterProcesses, find_server
from tests.support import Client, HubProcess, http, t, token

HUB_ENV = {
    "LIVEROOM_ANONYMOUS": "1", "LIVEROOM_FRAME_RATE": "0", "LIVEROOM_COMMENT_RATE": "0",
    # a buy waits up to 2 s for a replica (long enough to see it wait)
    "LIVEROOM_SALES_WAIT_MS": "2000", "LIVEROOM_REDIS_TIMEOUT_MS": "3000",
}
VIEWERS = 5  # per room per hub


def room_on_master(cluster: RedisClusterProcesses, index: int) -> str:
    """A new room whose slot the cluster's `index`-th master owns (slots split as start() does)."""
    per = 16384 // cluster.masters
    while True:
        room = "fo" + uuid.uuid4().hex[:8]
        slot = key_slot(room.encode())
        if min(slot // per, cluster.masters - 1) == index:
            return room


class Notices:
    """A host sending a notice every 100 ms: which were acked, and what the others answered."""

    def __init__(self, host: Client) -> None:
        self.host = host
        self.acked: list[int] = []
        self.refused: Counter[str] = Counter()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            r = await self.host.call("notice", text=f"n{n}")
            if r["ok"]:
                self.acked.append(r["seq"])
            else:
                self.refused[r["error"]["code"]] += 1
            await asyncio.sleep(0.1)

    async def acked_more(self, n: int, what: str) -> None:
        """Wait until `n` more notices than now have been acked."""
        goal = len(self.acked) + n
        await self.host.wait_for(lambda: len(self.acked) >= goal, timeout=20, what=what)


def notice_seqs(c: Client) -> set[int]:
    return {e["seq"] for e in c.of_type("notice")}


def missing_notices(c: Client, want: set[int]) -> str:
    """What a viewer lacks and what it saw, for a failure message."""
    later = [(f["t"], f.get("epoch"), f.get("seq"), f.get("recovered")) for f in c.frames if f["t"] in ("welcome", "bye")]
    got = sorted(notice_seqs(c))
    return (
        f"missing {sorted(want - set(got))} of {len(want)}; got {len(got)}, last {got[-1:]}; "
        f"welcome {(c.welcome.get('epoch'), c.welcome.get('seq'))}, later {later}, closed {c.closed.is_set()}"
    )


async def test_master_killed_rooms_keep_their_events(start_hub: Callable[..., HubProcess]) -> None:
    cluster = RedisClusterProcesses(find_server(), masters=3, replicas=1).start()
    clients: list[Client] = []
    started: list[HubProcess] = []
    senders: list[Notices] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        dead = cluster.nodes[0]
        seeds = ",".join(n.url for n in cluster.nodes)  # the node that dies first
        hubs = [
            start_hub(LIVEROOM_REDIS_CLUSTER=dead.url, **HUB_ENV),  # a single seed, the one that dies
            start_hub(LIVEROOM_REDIS_CLUSTER=seeds, **HUB_ENV),
        ]
        started += hubs
        rooms = [room_on_master(cluster, i) for i in range(3)]
        doomed = rooms[0]
        viewers: dict[str, list[Client]] = {r: [] for r in rooms}
        for room in rooms:
            for h in hubs:
                for i in range(VIEWERS):
                    viewers[room].append(await Client.connect(h.base, room, None))
        clients += [c for vs in viewers.values() for c in vs]
        for i, room in enumerate(rooms):
            host = await Client.connect(hubs[i % 2].base, room, token(f"host{i}", role="host", rooms=[room]))
            clients.append(host)
            senders.append(Notices(host))
        tasks = [asyncio.create_task(s.run()) for s in senders]
        await senders[0].acked_more(5, "notices before the kill")

        # a buy on the doomed master while its replica is frozen: answered only once the
        # replica has it, so the order survives the kill right after
        shop = token("shop", role="admin")
        sale = (await senders[0].host.call("sale_create", sku="S1", title="Tee", price=500, stock=5, limit=1))["sale"]
        buyer = await Client.connect(hubs[0].base, doomed, token("buyer"))
        clients.append(buyer)
        replica = cluster.replica_nodes[0].proc
        assert replica is not None
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            buy = asyncio.create_task(buyer.call("buy", sale=sale, qty=1, key="k1"))
            done, _ = await asyncio.wait([buy], timeout=0.5)
            assert not done, "a buy was answered before any replica had it"
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        bought = await buy
        assert bought["ok"], bought
        order = bought["order"]

        dead.kill()
        # the replica is promoted after the node timeout (2 s) and an election
        await senders[0].acked_more(10, "notices on the failed-over room")

        async def everyone_got_every_acked_notice() -> None:
            for i, (room, s) in enumerate(zip(rooms, senders)):
                want = set(s.acked)
                for c in viewers[room] + [s.host]:
                    try:
                        await c.wait_for(lambda c=c: want <= notice_seqs(c), timeout=10, what=f"acked notices in {room}")
                    except AssertionError as e:
                        raise AssertionError(f"room {i}: {missing_notices(c, want)}") from e

        await everyone_got_every_acked_notice()

        # a hub started now, the dead node first in its seeds, comes up and serves the room;
        # late viewers (on a hub where the room already was, and on the new hub) get its events
        late_hub = start_hub(LIVEROOM_REDIS_CLUSTER=seeds, **HUB_ENV)
        started.append(late_hub)
        late = [await Client.connect(h.base, doomed, None) for h in (hubs[0], late_hub)]
        clients += late
        since = max(senders[0].acked)
        await senders[0].acked_more(5, "notices after the late joins")
        for s in senders:
            s.stop.set()
        await asyncio.gather(*tasks)

        assert all(set(s.refused) <= {"unavailable"} for s in senders), [s.refused for s in senders]
        await everyone_got_every_acked_notice()
        status, got = await http("GET", f"{hubs[1].base}/api/orders/{order}", shop)
        assert status == 200 and got["order"]["user"] == "buyer", (status, got)
        want_late = {q for q in senders[0].acked if q > since}
        for c in late:
            await c.wait_for(lambda c=c: want_late <= notice_seqs(c), timeout=10, what="notices for a late viewer")
    finally:
        for s in senders:
            s.stop.set()  # a cancel can be lost inside Client.wait_for's asyncio.wait_for (3.11)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=t(10))
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for h in started:
            h.stop()  # before their Redis goes
        cluster.stop()
