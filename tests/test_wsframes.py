"""The frame reader (protocol/wsframes.py) fed bytes: every RFC 6455 / RFC 7692 rule it checks,
and random or mutated streams thrown at it. No sockets, no hub."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveroom.protocol.wsframes import (
    Close,
    CloseCode,
    Event,
    FrameReader,
    Ping,
    Pong,
    ProtocolViolation,
    TooLarge,
    close_code_valid,
)

MAX = 1024
KEY = b"\x37\xfa\x21\x3d"


def frame(
    payload: bytes,
    opcode: int = 2,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    key: bytes = KEY,
    length: int | None = None,
) -> bytes:
    """One client frame; `rsv` is OR-ed into the first byte (0x40 RSV1, 0x20, 0x10);
    `length` overrides the 64-bit length field (then always used)."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mbit = 0x80 if masked else 0
    if length is not None:
        head = struct.pack("!BBQ", first, mbit | 127, length)
    elif n < 126:
        head = struct.pack("!BB", first, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if not masked:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def deflated(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def events(data: bytes, deflate: bool = False, max_size: int = MAX, chunk: int = 0) -> list[Event]:
    """Every event from `data`, fed whole or in `chunk`-byte pieces."""
    r = FrameReader(max_size, deflate)
    out: list[Event] = []
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    for piece in pieces:
        r.feed(piece)
        while (ev := r.next_event()) is not None:
            out.append(ev)
    return out


def violation(data: bytes, deflate: bool = False) -> ProtocolViolation:
    """The one violation `data` ends with (after any events before it)."""
    evs = events(data, deflate)
    assert evs and isinstance(evs[-1], ProtocolViolation), evs
    assert not any(isinstance(e, ProtocolViolation) for e in evs[:-1])
    return evs[-1]


# -- what is read -------------------------------------------------------------------------


def test_binary_and_text_messages() -> None:
    """A message is its payload: bytes for a binary frame, str for a text frame."""
    assert events(frame(b"\x01\x02", 2) + frame("héllo".encode(), 1)) == [b"\x01\x02", "héllo"]


@pytest.mark.parametrize("n", [0, 125, 126, 1000])
def test_lengths(n: int) -> None:
    """7-bit, 16-bit and (non-minimal but legal) 64-bit lengths."""
    data = bytes(range(256)) * 4
    assert events(frame(data[:n]), max_size=2000) == [data[:n]]
    assert events(frame(data[:n], length=n), max_size=2000) == [data[:n]]


def test_fragments_are_reassembled_with_control_frames_between() -> None:
    """A message in three fragments, a ping in the middle: the ping first, then the message;
    a UTF-8 character split across fragments is fine (checked after reassembly)."""
    text = "a€b".encode()  # € is three bytes
    stream = frame(text[:2], 1, fin=False) + frame(b"hi", 9) + frame(text[2:3], 0, fin=False) + frame(text[3:], 0)
    assert events(stream) == [Ping(b"hi"), "a€b"]


def test_ping_pong_and_close() -> None:
    """Control frames with their payloads; a close with a code and a UTF-8 reason."""
    stream = frame(b"p", 9) + frame(b"q", 10) + frame(struct.pack("!H", 4001) + "bye ✓".encode(), 8)
    assert events(stream) == [Ping(b"p"), Pong(b"q"), Close(4001, "bye ✓")]


def test_empty_close() -> None:
    assert events(frame(b"", 8)) == [Close(None, "")]


def test_nothing_is_read_after_a_close() -> None:
    """The peer may send nothing after its close: later bytes are ignored."""
    r = FrameReader(MAX, False)
    r.feed(frame(struct.pack("!H", 1000), 8) + frame(b"late"))
    assert r.next_event() == Close(1000, "")
    assert r.done and r.next_event() is None
    r.feed(frame(b"later"))
    assert r.next_event() is None


def test_compressed_messages() -> None:
    """RSV1 messages are inflated, each on its own (client_no_context_takeover), also when
    fragmented (RSV1 on the first fragment only)."""
    body = deflated(b'{"t":"comment"}' * 3)
    stream = frame(body, 1, rsv=0x40) + frame(body[:5], 1, fin=False, rsv=0x40) + frame(body[5:], 0)
    assert events(stream, deflate=True) == ['{"t":"comment"}' * 3] * 2


def test_feeding_byte_by_byte_gives_the_same_events() -> None:
    stream = frame(b"x" * 300) + frame(b"p", 9) + frame(b"ab", 1, fin=False) + frame(b"c", 0) + frame(b"", 8)
    assert events(stream, chunk=1) == events(stream) == [b"x" * 300, Ping(b"p"), "abc", Close(None, "")]


def test_idle_reader_holds_no_containers() -> None:
    """Between frames the reader keeps only ints, b"" and None (bench/gc_objects.py)."""
    r = FrameReader(MAX, True)
    r.feed(frame(b"a", 1, fin=False) + frame(b"b", 0) + frame(b"c"))
    while r.next_event() is not None:
        pass
    assert (r.buf, r.pos, r.skip, r.frag, r.frag_op) == (b"", 0, 0, None, 0)
    assert not hasattr(r, "__dict__")


# -- close frames (RFC 6455 sections 5.5.1 and 7.4) -------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_close_codes_a_peer_may_send(code: int) -> None:
    assert close_code_valid(code)
    assert events(frame(struct.pack("!H", code), 8)) == [Close(code, "")]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_codes_a_peer_may_not_send(code: int) -> None:
    """Reserved (1005, 1006, 1015), unassigned below 3000, or out of range: 1002."""
    assert not close_code_valid(code)
    assert violation(frame(struct.pack("!H", code), 8)).code == CloseCode.PROTOCOL_ERROR


def test_one_byte_close_payload() -> None:
    assert violation(frame(b"\x03", 8)).code == 1002


def test_close_reason_not_utf8() -> None:
    assert violation(frame(struct.pack("!H", 1000) + b"\xff\xfe", 8)).code == 1007


# -- framing violations: 1002 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(frame(b"x", masked=False), id="unmasked"),
        pytest.param(frame(b"x", rsv=0x20), id="rsv2"),
        pytest.param(frame(b"x", rsv=0x10), id="rsv3"),
        pytest.param(frame(b"x", rsv=0x40), id="rsv1-without-deflate"),
        pytest.param(frame(b"x", 9, rsv=0x40), id="rsv1-on-control"),
        pytest.param(frame(b"x" * 126, 9), id="control-over-125"),
        pytest.param(frame(b"x", 9, fin=False), id="fragmented-control"),
        pytest.param(frame(b"x", 0), id="continuation-without-start"),
        pytest.param(frame(b"x", 2, fin=False) + frame(b"y", 1), id="data-frame-inside-a-fragmented-message"),
        pytest.param(frame(b"x", 3), id="opcode-3"),
        pytest.param(frame(b"x", 7), id="opcode-7"),
        pytest.param(frame(b"x", 11), id="opcode-11"),
        pytest.param(frame(b"x", 15), id="opcode-15"),
        pytest.param(frame(b"", length=1 << 63), id="64-bit-length-top-bit"),
        pytest.param(frame(b"", length=(1 << 64) - 1), id="64-bit-length-all-ones"),
    ],
)
def test_framing_violations(stream: bytes) -> None:
    assert violation(stream).code == CloseCode.PROTOCOL_ERROR


def test_rsv1_on_a_continuation_with_deflate() -> None:
    """RFC 7692 6.1: RSV1 only on the first frame of a message."""
    stream = frame(deflated(b"ab"), 2, fin=False, rsv=0x40) + frame(b"", 0, rsv=0x40)
    assert violation(stream, deflate=True).code == 1002


def test_violation_is_final() -> None:
    """After a violation the reader reads nothing: the connection is being failed."""
    r = FrameReader(MAX, False)
    r.feed(frame(b"x", masked=False) + frame(b"ok"))
    assert isinstance(r.next_event(), ProtocolViolation)
    assert r.done and r.next_event() is None


def test_violation_seen_before_the_payload_arrives() -> None:
    """A bad header fails at once, without waiting for (or buffering) its payload."""
    assert violation(frame(b"x" * 500, masked=False)[:4]).code == 1002


# -- payload violations: 1007 -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"abc\xe2\x82"])
def test_text_not_utf8(bad: bytes) -> None:
    """Invalid bytes, an overlong form, a surrogate, a truncated character: 1007."""
    assert violation(frame(bad, 1)).code == CloseCode.INVALID_DATA


def test_text_not_utf8_after_reassembly_and_inflate() -> None:
    assert violation(frame(b"ok", 1, fin=False) + frame(b"\xff", 0)).code == 1007
    assert violation(frame(deflated(b"\xff\xfe"), 1, rsv=0x40), deflate=True).code == 1007


def test_bad_deflate_data() -> None:
    assert violation(frame(b"\xff\xff\xff\xff", 2, rsv=0x40), deflate=True).code == 1007


# -- too large: `bye too_large`, 1009, and reading goes on ------------------------------------


def test_too_large_frame_is_skipped_and_reading_goes_on() -> None:
    """One event for the dropped message; the peer's later frames (its close) are read."""
    stream = frame(b"x" * (MAX + 1)) + frame(b"p", 9) + frame(struct.pack("!H", 1009), 8)
    for chunk in (0, 1, 7, 100):
        assert events(stream, chunk=chunk) == [TooLarge(), Ping(b"p"), Close(1009, "")]


def test_too_large_fragmented_message_is_skipped_to_its_end() -> None:
    """Fragments that are small alone but too large together: the rest of that message is
    skipped (not a 'continuation without a start'), the next message is read."""
    part = b"y" * (MAX // 2)
    stream = frame(part, 2, fin=False) + frame(part, 0, fin=False) + frame(part, 0, fin=False)
    stream += frame(part, 0) + frame(b"next")
    assert events(stream) == [TooLarge(), b"next"]
    assert events(stream, chunk=5) == [TooLarge(), b"next"]


def test_too_large_is_not_buffered() -> None:
    """The oversized payload is dropped as it arrives."""
    r = FrameReader(MAX, False)
    r.feed(frame(b"z" * 100_000)[:50_000])
    assert r.next_event() == TooLarge()
    assert r.next_event() is None and not r.buf


def test_too_large_after_inflate() -> None:
    """A small compressed message that inflates past max_size (a zip bomb)."""
    assert events(frame(deflated(b"\0" * (MAX + 1)), 2, rsv=0x40), deflate=True) == [TooLarge()]
    assert events(frame(deflated(b"\0" * MAX), 2, rsv=0x40), deflate=True) == [b"\0" * MAX]


def test_max_size_counts_the_whole_message() -> None:
    assert events(frame(b"a" * MAX)) == [b"a" * MAX]
    assert events(frame(b"a" * 500, 2, fin=False) + frame(b"a" * 524, 0)) == [b"a" * MAX]


# -- random and mutated streams (hypothesis) ----------------------------------------------------

payloads = st.binary(max_size=300)
texts = st.text(max_size=100)


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[Event], bool]:
    """A valid client stream and the events it must give: messages (text or binary, some
    fragmented, some compressed) with pings and pongs between and inside them, maybe a close."""
    deflate = draw(st.booleans())
    out = b""
    expect: list[Event] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            p = draw(st.binary(max_size=125))
            op = draw(st.sampled_from([9, 10]))
            out += frame(p, op, key=draw(st.binary(min_size=4, max_size=4)))
            expect.append(Ping(p) if op == 9 else Pong(p))
            continue
        text = draw(st.booleans())
        data = draw(texts).encode() if text else draw(payloads)
        compress = deflate and draw(st.booleans())
        wire = deflated(data) if compress else data
        cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=3)))
        parts = [wire[a:b] for a, b in zip([0] + cuts, cuts + [len(wire)])]
        for i, part in enumerate(parts):
            out += frame(
                part,
                (1 if text else 2) if i == 0 else 0,
                fin=i == len(parts) - 1,
                rsv=0x40 if compress and i == 0 else 0,
                key=draw(st.binary(min_size=4, max_size=4)),
            )
            if i < len(parts) - 1 and draw(st.booleans()):
                out += frame(b"mid", 9)
                expect.append(Ping(b"mid"))
        expect.append(data.decode() if text else data)
    if draw(st.booleans()):
        out += frame(struct.pack("!H", 1000) + b"done", 8)
        expect.append(Close(1000, "done"))
    return out, expect, deflate


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


def run(pieces: list[bytes], deflate: bool) -> list[Event]:
    """Events of a stream fed in pieces, checking the reader's contract on the way: only
    event types come out, and nothing after a close or a violation."""
    r = FrameReader(MAX, deflate)
    out: list[Event] = []
    for piece in pieces:
        r.feed(piece)
        while (ev := r.next_event()) is not None:
            assert not (out and isinstance(out[-1], (Close, ProtocolViolation))), out
            assert isinstance(ev, (bytes, str, Ping, Pong, Close, TooLarge, ProtocolViolation)), ev
            if isinstance(ev, ProtocolViolation):
                assert ev.code in (CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA)
            out.append(ev)
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(valid_streams(), st.lists(st.integers(0, 10_000), max_size=20))
def test_valid_stream_in_any_chunks_gives_its_events(
    stream: tuple[bytes, list[Event], bool], cuts: list[int]
) -> None:
    """Valid frames split at random points: the same events as fed whole, and the right ones."""
    data, expect, deflate = stream
    assert run([data], deflate) == expect
    assert run(split(data, cuts), deflate) == expect


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10_000), max_size=10), st.booleans())
def test_random_bytes_never_raise(data: bytes, cuts: list[int], deflate: bool) -> None:
    """Garbage gives events or a violation, never an exception, whatever the chunking."""
    assert run(split(data, cuts), deflate) == run([data], deflate)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    valid_streams(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=4),
    st.integers(0, 10_000),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_mutated_streams_never_raise(
    stream: tuple[bytes, list[Event], bool], flips: list[tuple[int, int]], cut: int, cuts: list[int]
) -> None:
    """Valid streams with bit flips and truncated: events or a violation, never an exception,
    and the same outcome whatever the chunking."""
    data, _, deflate = stream
    if not data:
        return
    mutated = bytearray(data)
    for at, bit in flips:
        mutated[at % len(mutated)] ^= 1 << bit
    mutated_bytes = bytes(mutated[: cut % (len(mutated) + 1)])
    assert run(split(mutated_bytes, cuts), deflate) == run([mutated_bytes], deflate)
