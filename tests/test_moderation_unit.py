"""Moderation pieces without Redis or sockets: the batch builder with host and shadowed
comments (the shared frame still encoded once per codec), the control message on the wire,
the scripts' keys under the room's tag."""

from __future__ import annotations

from typing import Any

import msgpack

from liveroom.broker import keys as K
from liveroom.broker.base import ByeMsg
from liveroom.broker.calls import Calls
from liveroom.broker.wire import parse_message
from liveroom.core import batch
from liveroom.protocol.codec import Codec
from tests.test_core import payload


def comment(seq: int, user: str, **flags: Any) -> dict[str, Any]:
    return {"type": "comment", "seq": seq, "user": {"id": user, "name": user}, "text": f"c{seq}", "ts": 1, **flags}


def events_of(frame: bytes) -> list[dict[str, Any]]:
    return msgpack.unpackb(payload(frame))["events"]  # type: ignore[no-any-return]


def test_shadowed_comment_goes_to_its_author_alone() -> None:
    durable = [comment(1, "a"), comment(2, "troll", shadow=True), comment(3, "b")]
    wires = [(Codec.MSGPACK, 0), (Codec.JSON, 0)]
    out = batch.build("r", durable, [], None, wires, {"a", "b", "troll"})
    assert out.encodes == 2  # the shared frame: once per codec, whoever is in the room
    assert [e["seq"] for e in events_of(out.frames[(Codec.MSGPACK, 0)])] == [1, 3]
    mine = msgpack.unpackb(payload(out.personal["troll"][Codec.MSGPACK]))
    assert [e["seq"] for e in mine["events"]] == [1, 2, 3]
    assert all("shadow" not in e for e in mine["events"]) and "dropped" not in mine
    assert set(out.personal) == {"troll"}
    # the author is not here: nobody gets it, no personal frame
    out = batch.build("r", durable, [], None, wires, {"a", "b"})
    assert out.personal == {}


def test_host_comments_are_not_sampled() -> None:
    durable = [comment(1, "a"), comment(2, "host", host=True), comment(3, "b"), comment(4, "c")]
    assert [e["seq"] for e in batch.sampled(durable)] == [1, 3, 4]
    out = batch.build("r", durable, [], [0], [(Codec.MSGPACK, 0)], set())  # the sampler kept one of three
    sent = msgpack.unpackb(payload(out.frames[(Codec.MSGPACK, 0)]))
    assert [e["seq"] for e in sent["events"]] == [1, 2] and sent["dropped"] == 2


def test_visible_backlog() -> None:
    events = [comment(1, "a"), comment(2, "troll", shadow=True)]
    assert batch.visible(events, "a") == [comment(1, "a")]
    assert batch.visible(events, "troll") == [comment(1, "a"), comment(2, "troll")]


def test_bye_control_message() -> None:
    assert parse_message(b"Bkicked troll") == ByeMsg("troll", "kicked")
    assert parse_message(b"Bbanned user with space") == ByeMsg("user with space", "banned")
    assert parse_message(b"Bnothing") is None


def test_moderation_calls_stay_in_the_rooms_slot() -> None:
    calls = Calls("SPUBLISH", lambda r: K.room_keys(r).room_orders_stream, 1000, "hub-1")
    room = "shop:42"
    for call in [
        calls.room_bye(room, "u", "kicked", ""),
        calls.room_admit(room, "u"),
        calls.room_mute(room, "u", None, (60, -1)),
        calls.room_report(room, 5, "u", "spam", b"x"),
    ]:
        assert all(k.startswith("lr:{shop:42}:") for k in call.keys), call


class Sink:
    def __init__(self, user: str, codec: Codec = Codec.MSGPACK) -> None:
        self.user_id, self.codec, self.wire = user, codec, (codec, 0)
        self.got: list[bytes] = []

    def send(self, data: bytes, essential: bool, comments: int = 0) -> None:
        self.got.append(data)


def test_a_tick_of_shadowed_comments_only_sends_nothing_to_the_others() -> None:
    out = batch.build("r", [comment(7, "troll", shadow=True)], [], None, [(Codec.MSGPACK, 0)], {"troll", "a"})
    assert out.encodes == 0
    troll, a = Sink("troll"), Sink("a")
    assert batch.write(out, {(Codec.MSGPACK, 0): [troll, a]}) == 1
    assert a.got == [] and [e["seq"] for e in events_of(troll.got[0])] == [7]
    assert "dropped" not in msgpack.unpackb(payload(troll.got[0]))
