"""Which pub/sub listener carries which room's channel: one listener per shard or cluster
master, created on first use; a room follows its slot when it moves to another node.

A slot moves in two ways. A live node drops the channel's subscribers unasked (resharding,
a controlled failover): the listener reports it (`on_moved`). A dead node says nothing:
its listener cannot reconnect and reports that (`on_unreachable`), and once the slot map
names a new owner the room is subscribed there. Either way the rooms that moved are handed
to `on_reconnect`, and the hub fetches from history what was published meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

from redis.exceptions import RedisError

from liveroom.broker import keys as K
from liveroom.broker.listener import MessageHandler, ShardListener
from liveroom.broker.topology import UNREACHABLE, Topology, pubsub_client
from liveroom.errors import Unavailable

log = logging.getLogger(__name__)

FOLLOW_ATTEMPTS = 20  # 0.5 s apart: a slot move or failover settles well within this


class Subscriptions:
    def __init__(
        self, topology: Topology, timeout: float, deliver: MessageHandler, on_reconnect: Callable[[list[str]], None],
        probe_prefix: str = "", probe_interval: float = 1.0, probe_timeout: float = 3.0,
    ) -> None:  # fmt: skip
        """`probe_prefix`: this hub's probe channels start with it ("" no liveness probe)."""
        self.topology = topology
        self._probe = (probe_prefix, probe_interval, probe_timeout)
        self.timeout = timeout
        self._deliver = deliver
        self._on_reconnect = on_reconnect
        self._listeners: dict[str, ShardListener] = {}  # by node name
        self._room: dict[str, ShardListener] = {}  # room -> the listener carrying its channel
        self._relocating: set[ShardListener] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def subscribe(self, room: str) -> None:
        """Subscribed once Redis has confirmed it: no message published after is missed."""
        listener = self._listener_for(room)
        self._room[room] = listener
        try:
            await listener.subscribe(K.room_keys(room).channel, self.timeout)
        except UNREACHABLE + (RedisError,) as exc:
            self._room.pop(room, None)
            raise Unavailable(f"could not subscribe ({type(exc).__name__})") from None

    async def unsubscribe(self, room: str) -> None:
        listener = self._room.pop(room, None)
        if listener is None:
            return
        try:
            await asyncio.wait_for(listener.unsubscribe(K.room_keys(room).channel), self.timeout)
        except UNREACHABLE + (RedisError,):
            log.warning("unsubscribe %s failed; the listener drops its messages", room)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for listener in self._listeners.values():
            await listener.close()

    def _listener_for(self, room: str) -> ShardListener:
        name, url = self.topology.node(room)
        listener = self._listeners.get(name)
        if listener is None:
            prefix, interval, timeout = self._probe
            listener = ShardListener(
                pubsub_client(url, self.timeout), self._deliver, sharded=self.topology.sharded, name=name,
                probe=f"{prefix}:{name}" if prefix else "", probe_interval=interval, probe_timeout=timeout,
            )  # fmt: skip
            listener.on_reconnect = lambda n=name: self._reconnected(n)
            if self.topology.follows_slots:
                listener.on_moved = self._channel_moved
                listener.on_unreachable = lambda lst=listener: self._unreachable(lst)
            listener.start()
            self._listeners[name] = listener
        return listener

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _reconnected(self, name: str) -> None:
        self._on_reconnect([r for r, lst in self._room.items() if lst.name == name])

    # -- following slots (cluster) ---------------------------------------------------------

    def _channel_moved(self, channel: bytes) -> None:
        room = K.room_of_channel(channel)
        self._spawn(self._follow(room, self._room.get(room)))

    async def _follow(self, room: str, old: ShardListener | None) -> None:
        """Subscribe a room again on the node that now owns its slot, then have the hub
        fetch from history whatever was published while it was moving."""
        for _ in range(FOLLOW_ATTEMPTS):
            if old is None or self._room.get(room) is not old:
                return  # unsubscribed (or already followed) meanwhile
            try:
                await self.topology.relearn()
                listener = self._listener_for(room)
                await listener.subscribe(K.room_keys(room).channel, self.timeout)
            except (Unavailable, RedisError, OSError, asyncio.TimeoutError) as exc:
                log.warning("room %s: resubscribe after a slot move failed (%r); retrying", room, exc)
                await asyncio.sleep(0.5)
                continue
            if self._room.get(room) is not old:  # unsubscribed while we waited
                await listener.unsubscribe(K.room_keys(room).channel)
                return
            self._room[room] = listener
            log.info("room %s: following its slot to %s", room, listener.name)
            self._on_reconnect([room])
            return
        log.error("room %s: could not follow its slot; its viewers get no events", room)

    def _unreachable(self, old: ShardListener) -> None:
        """A listener cannot reconnect to its node. If the node is dead for good, a replica
        takes its slots over, and Redis tells nobody: look at the slot map again (the
        listener calls this after every failed attempt until its rooms have moved)."""
        if old in self._relocating:
            return
        self._relocating.add(old)
        self._spawn(self._relocate(old)).add_done_callback(lambda _: self._relocating.discard(old))

    async def _relocate(self, old: ShardListener) -> None:
        try:
            await self.topology.relearn()
        except Exception as exc:  # the cluster may be down for a moment: the next attempt
            log.info("pub/sub %s: slot map not refreshed (%r)", old.name, exc)
            return
        rooms = [r for r, lst in self._room.items() if lst is old and self._owner(r) not in (None, old.name)]
        moved = [r for r, ok in zip(rooms, await asyncio.gather(*(self._move(r, old) for r in rooms))) if ok]
        if moved:
            log.warning("pub/sub %s unreachable: %d room(s) moved to their slots' new owners", old.name, len(moved))
            self._on_reconnect(moved)
        if old.channels == 0 and self._listeners.get(old.name) is old:
            del self._listeners[old.name]  # nothing left to listen to on a dead node
            await old.close()

    def _owner(self, room: str) -> str | None:
        try:
            return self.topology.node(room)[0]
        except Unavailable:
            return None

    async def _move(self, room: str, old: ShardListener) -> bool:
        channel = K.room_keys(room).channel
        try:
            new = self._listener_for(room)
            await new.subscribe(channel, self.timeout)
        except (Unavailable, RedisError, OSError, asyncio.TimeoutError) as exc:
            log.warning("room %s: subscribing on its slot's new owner failed (%r); retrying", room, exc)
            return False
        if self._room.get(room) is not old:  # unsubscribed (or moved) meanwhile
            if self._room.get(room) is not new:
                try:
                    await asyncio.wait_for(new.unsubscribe(channel), self.timeout)
                except UNREACHABLE + (RedisError,):
                    pass
            return False
        old.forget(channel)
        self._room[room] = new
        return True
