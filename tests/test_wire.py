"""The broker's pure parts, fed plain values: what the scripts write, and what they are fed."""

from __future__ import annotations

import msgpack

from liveroom.broker import keys as K
from liveroom.broker.base import DurableMsg, LikesMsg, StockMsg
from liveroom.broker.calls import PRESENCE_CHUNK, Calls
from liveroom.broker.wire import parse_message, room_state, sale_records


def test_pubsub_payloads() -> None:
    assert parse_message(b"D12 ab12cd34\n\x81\xa1a\x01") == DurableMsg(12, "ab12cd34", b"\x81\xa1a\x01")
    assert parse_message(b"L900") == LikesMsg(900)
    assert parse_message(b"Ss1a2 7") == StockMsg("s1a2", 7)
    assert parse_message(b"D12 nobody") is None and parse_message(b"?") is None


def test_room_state_is_python_values() -> None:
    info = {"sku": "A", "title": "Hat", "price": 100, "stock": 5, "limit": 1, "starts_at": 0, "ends_at": 0}
    meta = [b"seq", b"9", b"epoch", b"e1", b"likes", b"40", b"pinned", msgpack.packb({"sku": "A"}), b"gmv_pending", b"300"]
    sales = [b"s1:info", msgpack.packb(info), b"s1:stock", b"4", b"s1:status", b"open", b"s1:n", b"1"]
    st = room_state([meta, 3, 2, sales])
    assert (st.seq, st.epoch, st.likes, st.online, st.first_seq, st.gmv_pending) == (9, "e1", 40, 3, 2, 300)
    assert st.pinned == {"sku": "A"}
    assert [(s.id, s.stock, s.status, s.info["title"]) for s in st.sales] == [("s1", 4, "open", "Hat")]
    assert sale_records({}) == []


def test_every_call_of_a_room_stays_in_its_slot() -> None:
    """On a cluster every key a script touches must carry the room's hash tag."""
    calls = Calls("SPUBLISH", lambda r: K.room_keys(r).room_orders_stream, 1000, "hub-1")
    room = "shop:42"
    made = [
        calls.room_state(room),
        calls.room_comment(room, b"x", "u", 2.0, 5),
        calls.room_publish(room, b"x", "pinned", b"v"),
        calls.room_like(room, 3),
        calls.presence_beat(room, 10_000, -1),
        calls.presence_reap(room, "hub-2"),
        calls.sale_create(room, "s1", b"i", 10, b"x"),
        calls.sale_close(room, "s1", b"x"),
        calls.sale_buy(room, "s1", "u", 1, "k", "o-", 900_000, b"x"),
        calls.order_release(room, "o1", "s1", "cancelled"),
        calls.order_confirm(room, "o1"),
        *calls.presence_sync(room, 10_000, ["a"], ["b"], {"a": "A"}),
        calls.room_comment(room, b"x", "u", 0, 0, "gift", "U"),
        calls.draw_start(room, b"x", "d1", b"i", "00", "gift", 1, False),
        calls.draw_join(room, "d1", "u", "U"),
        calls.draw_claim(room, "d1", 1000),
        calls.draw_result(room, "d1", b"x", b"r", 1, False),
        calls.draw_result(room, "d1", b"x", b"r", 1, True),
    ]
    for call in made:
        assert all("{shop:42}" in k for k in call.keys), call
    big = calls.presence_sync(room, 10_000, [f"u{i}" for i in range(2 * PRESENCE_CHUNK + 1)], [])
    assert len(big) == 3 and sum(c.args[2] for c in big) == 2 * PRESENCE_CHUNK + 1
