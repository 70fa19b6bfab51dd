"""Client WebSocket frames in (RFC 6455, with RFC 7692 permessage-deflate): bytes in, events out.

`FrameReader` owns everything about reading a client's stream: the incomplete frame, the
message being reassembled from fragments, inflating, the UTF-8 and close-code checks. It never
touches a socket, so every rule is tested by feeding it bytes (tests/test_wsframes.py), and
`web/connection.py` is left with acting on its events: write a pong, echo a close, fail the
connection with the code it names, hand a message to the endpoint.

It is fed with `feed()` and read with `next_event()`, one event at a time, so that the
connection can stop pulling when its inbox is full (reading paused) and go on later from the
same buffer.

One reader lives as long as its socket, so it is slotted and, between frames, holds only ints,
`b""` and None: an idle viewer must not give the cycle collector anything more to walk
(bench/gc_objects.py: one object, ~8 references per connection).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from liveroom.protocol.codec import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, unmask

DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2: removed by the sender, appended again here

RSV1 = 0x40  # "this message is compressed" (RFC 7692) when deflate was negotiated
DROPPING = 0x100  # in `frag_op`: the open message went over max_size; its frames are skipped


class CloseCode(IntEnum):
    """RFC 6455 section 7.4.1 and IANA's registry; 1005, 1006 and 1015 are never sent."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY = 1008
    TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# what a peer may put in a close frame: assigned codes below 3000 that are not reserved for
# "no frame" situations, then the registered (3000-3999) and private (4000-4999) ranges
SENDABLE_CLOSE_CODES = frozenset(CloseCode) - {CloseCode.NO_STATUS, CloseCode.ABNORMAL, CloseCode.TLS_HANDSHAKE}


def close_code_valid(code: int) -> bool:
    """May a peer send this code in a close frame (RFC 6455 section 7.4)?"""
    return code in SENDABLE_CLOSE_CODES or 3000 <= code <= 4999


# -- events ---------------------------------------------------------------------------------
# Not frozen: a frozen dataclass's __init__ costs 0.15 us more per event (object.__setattr__).
# Nothing keeps an event past acting on it.


# A complete data message is its payload, with no wrapper: `str` for a text message (valid
# UTF-8), `bytes` for a binary one. A wrapper object cost 0.2 us per frame, a tenth of reading
# a small frame (timeit of Connection.data_received, 20-byte frames: 2.1 us with it, 1.85
# without, as before this reader).
Message = Union[str, bytes]


@dataclass(slots=True)
class Ping:
    payload: bytes


@dataclass(slots=True)
class Pong:
    payload: bytes


@dataclass(slots=True)
class Close:
    """The peer's close frame, checked; `code` is None when it carried no payload. The reader
    reads nothing after it (the peer may send no more data)."""

    code: int | None
    reason: str


@dataclass(slots=True)
class TooLarge:
    """A message over max_size was dropped without being buffered (`bye too_large`, 1009);
    reading goes on, so that the peer's answer to our close is still seen."""


@dataclass(slots=True)
class ProtocolViolation:
    """The stream broke a rule: fail the connection with `code` (1002 or 1007). The reader
    reads nothing after it."""

    code: CloseCode
    reason: str


Event = Union[Message, Ping, Pong, Close, TooLarge, ProtocolViolation]


# -- the reader -----------------------------------------------------------------------------


class FrameReader:
    """One client's frames, from the bytes as they arrive."""

    __slots__ = ("max_size", "deflate", "buf", "pos", "skip", "frag", "frag_op")

    def __init__(self, max_size: int, deflate: bool) -> None:
        self.max_size = max_size  # a message (reassembled and inflated) may not be longer
        self.deflate = deflate  # permessage-deflate was negotiated: RSV1 is allowed
        # bytes not read yet; None once done (closed or failed). Falsy: nothing to read, which
        # the connection checks before calling next_event (a call less per read)
        self.buf: bytes | None = b""
        self.pos = 0  # where the unread part of `buf` starts
        self.skip = 0  # bytes of a dropped (too large) frame still to discard as they come
        self.frag: bytes | None = None  # the open message's payload so far
        self.frag_op = 0  # its opcode | RSV1 when compressed | DROPPING; 0: none open

    @property
    def done(self) -> bool:
        """A close frame or a violation was read: nothing more will be."""
        return self.buf is None

    def feed(self, data: bytes) -> None:
        """Bytes from the socket; ignored once done."""
        buf = self.buf
        if not buf:
            if buf is not None:
                self.buf = data
            return
        if self.pos:
            buf = buf[self.pos :]
            self.pos = 0
        self.buf = buf + data

    def discard(self) -> None:
        """The socket is gone: drop what is buffered and read nothing more."""
        self.buf = None
        self.pos = self.skip = self.frag_op = 0
        self.frag = None

    def next_event(self) -> Event | None:
        """The next event, or None until more bytes are fed (or forever, once done)."""
        buf = self.buf
        if buf is None:
            return None
        n = len(buf)
        pos = self.pos
        while True:
            if self.skip:
                k = min(self.skip, n - pos)
                self.skip -= k
                pos += k
            if n - pos < 2:
                break
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[head : pos + 4], "big")
                head = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[head : pos + 10], "big")
                if length >> 63:
                    return self._violation(CloseCode.PROTOCOL_ERROR, "64-bit length with its top bit set")
                head = pos + 10
            if not b1 & 0x80:
                return self._violation(CloseCode.PROTOCOL_ERROR, "unmasked client frame")
            if b0 & 0x30:
                return self._violation(CloseCode.PROTOCOL_ERROR, "RSV2 or RSV3 set")
            op = b0 & 0x0F
            frag_op = self.frag_op
            if op >= 8:
                if op > OP_PONG:
                    return self._violation(CloseCode.PROTOCOL_ERROR, f"unknown opcode {op}")
                if not b0 & 0x80 or length > 125 or b0 & RSV1:
                    return self._violation(CloseCode.PROTOCOL_ERROR, "fragmented, compressed or long control frame")
            else:
                if op > OP_BINARY:
                    return self._violation(CloseCode.PROTOCOL_ERROR, f"unknown opcode {op}")
                if b0 & RSV1 and (op == 0 or not self.deflate):
                    return self._violation(CloseCode.PROTOCOL_ERROR, "RSV1 without deflate, or on a continuation")
                if op:
                    if frag_op:
                        return self._violation(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
                elif not frag_op:
                    return self._violation(CloseCode.PROTOCOL_ERROR, "continuation without a message")
                elif frag_op & DROPPING:
                    self.skip = head + 4 + length - pos  # the rest of a dropped message
                    if b0 & 0x80:
                        self.frag_op = 0
                    continue
                if length + (len(self.frag) if self.frag is not None else 0) > self.max_size:
                    # not buffered: dropped as it arrives, with the rest of its message
                    self.skip = head + 4 + length - pos
                    self.frag = None
                    self.frag_op = 0 if b0 & 0x80 else DROPPING
                    self.pos = pos
                    return TooLarge()
            end = head + 4 + length
            if end > n:
                break
            payload = unmask(buf[head + 4 : end], buf[head : head + 4])
            if end < n:
                self.pos = end
            else:  # all read: the common case of one frame per read; idle from here
                self.buf = b""
                self.pos = 0
            if op >= 8:
                return self._control(op, payload)
            if b0 & 0x80 and op and not b0 & RSV1:  # a whole uncompressed message: inlined
                if op == OP_BINARY:
                    return payload
                try:
                    return payload.decode()
                except UnicodeDecodeError:
                    return self._violation(CloseCode.INVALID_DATA, "text message is not UTF-8")
            if op and b0 & 0x80:  # a whole compressed message
                return self._message(op | RSV1, payload)
            if op:
                self.frag_op = op | (b0 & RSV1)
                self.frag = payload
            else:
                self.frag += payload  # type: ignore[operator]  # frag_op set: frag is bytes
                if b0 & 0x80:
                    data = self.frag
                    self.frag = None
                    self.frag_op = 0
                    return self._message(frag_op, data)
            if end == n:
                return None
            pos = end
        # an incomplete frame (or nothing) is left: keep only it
        self.buf = buf[pos:] if pos < n else b""
        self.pos = 0
        return None

    def _control(self, op: int, payload: bytes) -> Event:
        if op == OP_PING:
            return Ping(payload)
        if op == OP_PONG:
            return Pong(payload)
        assert op == OP_CLOSE
        if not payload:
            self.discard()
            return Close(None, "")
        if len(payload) == 1:
            return self._violation(CloseCode.PROTOCOL_ERROR, "one-byte close payload")
        code = int.from_bytes(payload[:2], "big")
        if not close_code_valid(code):
            return self._violation(CloseCode.PROTOCOL_ERROR, f"close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            return self._violation(CloseCode.INVALID_DATA, "close reason is not UTF-8")
        self.discard()
        return Close(code, reason)

    def _message(self, op: int, data: bytes) -> Event:
        if op & RSV1:
            # client_no_context_takeover was negotiated: a fresh decompressor per message,
            # and no zlib window kept per connection between messages
            try:
                data = zlib.decompressobj(-15).decompress(data + DEFLATE_TAIL, self.max_size + 1)
            except zlib.error:
                return self._violation(CloseCode.INVALID_DATA, "bad deflate data")
            if len(data) > self.max_size:
                return TooLarge()
        if op & 0x0F == OP_TEXT:
            try:
                return data.decode()
            except UnicodeDecodeError:
                return self._violation(CloseCode.INVALID_DATA, "text message is not UTF-8")
        return data

    def _violation(self, code: CloseCode, reason: str) -> ProtocolViolation:
        self.discard()
        return ProtocolViolation(code, reason)
