"""What every group of broker operations stands on: the room's topology, the scripts'
KEYS/ARGV builders, the scripts by SHA, and the timeout. The operations are split by
concern (sales_ops.py, draws_ops.py, moderation_ops.py, sessions_ops.py; the room's own in
redis.py) over this one base, and RedisBroker is all of them."""

from __future__ import annotations

from typing import Any

from liveroom.broker.calls import Call, Calls
from liveroom.broker.scripts import Scripts
from liveroom.broker.topology import Topology


class ScriptRunner:
    hub_id: str
    topology: Topology
    calls: Calls
    scripts: Scripts
    _timeout: float
    wait_replicas: int = 0  # a buy's answer waits for this many replicas (if the shard has any)
    wait_ms: int = 50

    async def _run(self, call: Call, replicas: int = 0, wait_ms: int = 0) -> Any:
        """One script call on the room's node; a refusal is the caller's to map.
        `replicas`: answered once that many replicas have its writes (or wait_ms passed)."""
        return await self.topology.call(self.scripts[call.script], call.room, call.keys, call.args, replicas, wait_ms)

    def _cmd(self, room: str) -> Any:
        """The redis-py client for plain commands on the room's keys."""
        return self.topology.client(room)
