"""The Connection shell (web/connection.py) on a fake transport: what it writes and when it
closes for the reader's events. No sockets, no hub; the wire rules are in test_wsframes.py."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from liveroom.protocol.codec import Codec
from liveroom.web.connection import CLOSING, OPEN, Connection
from liveroom.web.outbox import HubOutbox
from tests.test_wsframes import frame


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def server_frames(self) -> list[tuple[int, bytes]]:
        """(opcode, payload) of every frame written, in order."""
        data = b"".join(self.written)
        out = []
        while data:
            n = data[1] & 0x7F
            head = 2
            if n == 126:
                n, head = struct.unpack("!H", data[2:4])[0], 4
            out.append((data[0] & 0x0F, data[head : head + n]))
            data = data[head + n :]
        return out


def connection(max_frame: int = 1024) -> tuple[Connection, FakeTransport, list[Any]]:
    got: list[Any] = []
    limits = SimpleNamespace(outbox_bytes=1 << 20, max_frame_bytes=max_frame, frame_burst=10, max_strikes=10, frame_rate=0)
    metrics = SimpleNamespace(byes=SimpleNamespace(labels=lambda *_: SimpleNamespace(inc=lambda: None)))
    endpoint = SimpleNamespace(
        cfg=SimpleNamespace(limits=limits),
        metrics=metrics,
        on_message=lambda conn, data: got.append(data),
        release=lambda conn: None,
        outbox=HubOutbox(0),
    )
    session = SimpleNamespace(identity=SimpleNamespace(id="u1"))
    conn = Connection(endpoint, Codec.MSGPACK, session, "127.0.0.1")  # type: ignore[arg-type]
    t = FakeTransport()
    conn.connection_made(t)  # type: ignore[arg-type]
    return conn, t, got


def close_codes(t: FakeTransport) -> list[int | None]:
    return [struct.unpack("!H", p[:2])[0] if p else None for op, p in t.server_frames() if op == 8]


async def test_messages_reach_the_endpoint_and_pings_are_answered() -> None:
    conn, t, got = connection()
    conn.data_received(frame(b"\x81\xa1t\xa4ping") + frame(b"hey", 9) + frame("text".encode(), 1))
    assert got == [b"\x81\xa1t\xa4ping", "text"]
    assert t.server_frames() == [(10, b"hey")]


async def test_peer_close_is_echoed_once_and_tcp_closed() -> None:
    conn, t, _ = connection()
    conn.data_received(frame(struct.pack("!H", 4001) + b"done", 8))
    assert close_codes(t) == [4001] and t.closing and conn.state == CLOSING


async def test_violation_fails_with_its_code() -> None:
    """An invalid close code from the peer: our close is 1002, not an echo."""
    conn, t, _ = connection()
    conn.data_received(frame(struct.pack("!H", 1005), 8))
    assert close_codes(t) == [1002] and t.closing


async def test_a_second_close_frame_is_never_written() -> None:
    """`bye too_large` sent its close (1009); a violation while waiting for the peer's
    answer closes TCP without a second close frame."""
    conn, t, got = connection()
    conn.data_received(frame(b"x" * 2000))
    assert close_codes(t) == [1009] and not t.closing
    conn.data_received(frame(b"late data"))  # ignored: we are closing
    conn.data_received(frame(b"x", masked=False))
    assert close_codes(t) == [1009] and t.closing
    assert got == []


async def test_peer_answer_to_our_close_is_not_echoed() -> None:
    conn, t, _ = connection()
    conn.bye("kicked")
    conn.data_received(frame(struct.pack("!H", 1008), 8))
    assert close_codes(t) == [1008] and t.closing


async def test_bytes_split_anywhere() -> None:
    """A frame arriving a byte at a time is one message, and an idle connection keeps no
    bytes between reads."""
    conn, t, got = connection()
    for b in frame(b"slow bytes"):
        conn.data_received(bytes([b]))
    assert got == [b"slow bytes"] and conn.state == OPEN
    assert conn.reader.buf == b""


async def test_bye_unavailable_says_when_to_reconnect() -> None:
    """A join that Redis did not answer ends in `bye unavailable` with `retry_ms`: the
    client backs off that long instead of reconnecting at once."""
    import msgpack

    conn, t, _ = connection()
    conn.bye("unavailable", 2500)
    frames = t.server_frames()
    assert msgpack.unpackb(frames[0][1]) == {"t": "bye", "reason": "unavailable", "reconnect": True, "retry_ms": 2500}
    assert close_codes(t) == [1013]
