"""Core without Redis or sockets: the batch builder, the room's seq rules, and a tick that
survives an event no codec can carry. Plain values in, plain values out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from typing import Any, cast

import msgpack

from liveroom.broker.base import Broker, DurableMsg
from liveroom.config import Config
from liveroom.core import batch
from liveroom.core.hub import Hub
from liveroom.core.room import GAP, Room, fingerprint
from liveroom.core.rules import CommentSampler
from liveroom.metrics import Metrics
from liveroom.protocol.codec import Codec, OP_BINARY, OP_TEXT


def comment(seq: int, user: str, text: str = "hi") -> dict[str, Any]:
    return {"type": "comment", "seq": seq, "user": {"id": user, "name": user}, "text": text, "ts": 1}


def payload(frame: bytes) -> bytes:
    """The payload of an unmasked, uncompressed server frame."""
    n = frame[1] & 0x7F
    if n == 126:
        return frame[4:]
    if n == 127:
        return frame[10:]
    return frame[2:]


def test_core_imports_no_redis_and_no_prometheus() -> None:
    """core/ can be used (and tested) without a Redis client or a metrics library."""
    code = (
        "import sys, liveroom.core.hub, liveroom.core.ops, liveroom.core.sales, liveroom.core.batch;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('redis', 'prometheus_client', 'aiohttp')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_batch_is_encoded_once_per_codec_and_shared_by_its_wires() -> None:
    durable = [comment(1, "a"), {"type": "notice", "seq": 2, "text": "sale at 8"}]
    ephemeral = [{"type": "likes", "total": 7}]
    wires = [(Codec.MSGPACK, 0), (Codec.JSON, 0), (Codec.MSGPACK, 15)]
    out = batch.build("r", durable, ephemeral, None, wires, {"a"})
    assert out.encodes == 2 and out.essential and out.dropped == 0 and not out.personal
    sent = msgpack.unpackb(payload(out.frames[(Codec.MSGPACK, 0)]))
    assert sent == {"t": "batch", "room": "r", "events": durable + ephemeral}
    assert json.loads(payload(out.frames[(Codec.JSON, 0)])) == sent
    assert out.frames[(Codec.MSGPACK, 0)][0] & 0x0F == OP_BINARY and out.frames[(Codec.JSON, 0)][0] & 0x0F == OP_TEXT
    assert out.frames[(Codec.MSGPACK, 15)][0] & 0x40  # RSV1: compressed once for the deflate wire


def test_sampled_out_commenter_gets_a_personal_copy() -> None:
    durable = [comment(1, "a"), comment(2, "b"), comment(3, "c")]
    out = batch.build("r", durable, [], [2], [(Codec.MSGPACK, 0)], {"a", "b"})  # only "c" kept
    shared = msgpack.unpackb(payload(out.frames[(Codec.MSGPACK, 0)]))
    assert [e["seq"] for e in shared["events"]] == [3] and shared["dropped"] == 2
    assert not out.essential  # only comments: a slow phone may skip it
    assert set(out.personal) == {"a", "b"}  # "c" kept anyway; nobody else is here
    mine = msgpack.unpackb(payload(out.personal["a"][Codec.MSGPACK]))
    assert [e["seq"] for e in mine["events"]] == [1, 3] and mine["dropped"] == 1


def test_room_seq_rules() -> None:
    room = Room("r", CommentSampler(0, 100))
    room.start("e1", 10, 0, 0)
    body = msgpack.packb({"type": "notice", "text": "x"})
    assert room.accept(DurableMsg(11, "e1", body)) is None
    assert room.accept(DurableMsg(11, "e1", body)) is None and len(room.pending) == 1  # a duplicate
    assert room.accept(DurableMsg(14, "e1", body)) == GAP  # 12 and 13 to fetch
    room.repaired([({"type": "notice", "seq": s}, fingerprint(body)) for s in (12, 13, 14)])
    due = room.due()
    assert [e["seq"] for e in due] == [11, 12, 13, 14]
    room.flushed_upto(due)
    assert room.flushed_seq == 14 and room.due() == []
    assert [e["seq"] for e in room.from_ring(12) or []] == [13, 14]
    room.ring = deque(list(room.ring)[2:], maxlen=room.ring.maxlen)
    assert room.from_ring(10) is None  # the ring no longer reaches back: history


class Sink:
    """A viewer that keeps what it is sent."""

    def __init__(self, codec: Codec, user: str) -> None:
        self.codec = codec
        self.wire = (codec, 0)
        self.user_id = user
        self.got: list[bytes] = []

    def send(self, data: bytes, essential: bool, comments: int = 0) -> None:
        self.got.append(data)


def test_an_event_no_codec_can_carry_is_dropped_alone() -> None:
    """The tick never loses the room's batch (or another room's) to one bad value: nothing
    is sent while it fails, the culprit is dropped, the rest goes out with the next tick."""
    hub = Hub(Config(), cast(Broker, object()), Metrics())
    rooms = []
    for rid in ("bad", "good"):
        room = Room(rid, CommentSampler(0, 100))
        room.start("e", 0, 0, 0)
        hub.rooms[rid] = room
        rooms.append(room)
    viewers = {rid: [Sink(Codec.JSON, "j"), Sink(Codec.MSGPACK, "m")] for rid in ("bad", "good")}
    for room in rooms:
        for v in viewers[room.id]:
            room.viewers.setdefault(v.wire, {})[v] = None  # type: ignore[index]
    rooms[0].pending = [
        {"type": "notice", "seq": 1, "text": "before"},
        {"type": "pin", "seq": 2, "product": {"price": float("nan")}},  # JSON cannot carry it
        {"type": "notice", "seq": 3, "text": "after"},
    ]
    rooms[1].pending = [{"type": "notice", "seq": 1, "text": "elsewhere"}]
    hub._dirty.update(rooms)
    hub.tick()
    assert [len(v.got) for v in viewers["bad"]] == [0, 0]  # nothing half-sent
    assert all(len(v.got) == 1 for v in viewers["good"])
    hub.tick()
    for v in viewers["bad"]:
        (frame,) = v.got
        data = payload(frame)
        events = json.loads(data)["events"] if v.codec is Codec.JSON else msgpack.unpackb(data)["events"]
        assert [e.get("seq") for e in events if "seq" in e] == [1, 3]
    assert rooms[0].flushed_seq == 3
