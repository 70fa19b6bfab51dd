"""Encode and decode frames for the two codecs, and wrap payloads as WebSocket frames.

Server-to-client WebSocket frames are not masked, so the bytes of one frame are the same for
every socket: `ws_frame()` is called once per room batch and the result is written to every
viewer as it is (encode once, write many).
"""

from __future__ import annotations

import json
import struct
import zlib
from enum import Enum
from typing import Any

import msgpack

from liveroom.errors import BAD_FRAME, ReplyError

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class Codec(str, Enum):
    MSGPACK = "msgpack"
    JSON = "json"

    @property
    def opcode(self) -> int:
        return OP_BINARY if self is Codec.MSGPACK else OP_TEXT


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class NonFinite:
    """What the JSON decoder makes of `NaN`, `Infinity` and `-Infinity`: never a float.
    `frames.check_input` refuses it with `bad_field` (keeping the frame's `id` for the
    reply), so a non-finite number never reaches Redis or another viewer's screen."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"NonFinite({self.name})"


def loads_json(data: bytes | str) -> Any:
    """Strict JSON (RFC 8259): NaN and the infinities, which Python's json accepts and
    browsers' JSON.parse does not, come out as NonFinite markers, never as floats."""
    return json.loads(data, parse_constant=NonFinite)


def encode(obj: Any, codec: Codec) -> bytes:
    """One frame payload. Raises TypeError/ValueError for values the codec cannot carry
    (a bug: client values are made safe by protocol/frames.py first). allow_nan=False: what
    a browser could not parse is never sent."""
    if codec is Codec.MSGPACK:
        packed: bytes = msgpack.packb(obj, use_bin_type=True)
        return packed
    return json.dumps(
        obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    ).encode()


def decode(data: bytes | str, codec: Codec, max_len: int) -> dict[str, Any]:
    """A client frame as a map; anything else is `bad_frame`."""
    try:
        if codec is Codec.MSGPACK:
            if isinstance(data, str):
                raise ReplyError(BAD_FRAME, "msgpack frames must be binary")
            obj = msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=True,
                max_str_len=max_len,
                max_bin_len=max_len,
                max_array_len=1024,
                max_map_len=256,
                max_ext_len=0,
                # invalid UTF-8 becomes lone surrogates, refused as `bad_field` by
                # frames.check_input with the frame's id, like a JSON "\ud800"
                unicode_errors="surrogateescape",
            )
        else:
            obj = loads_json(data)
    except ReplyError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, RecursionError) as exc:
        raise ReplyError(BAD_FRAME, f"undecodable frame ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise ReplyError(BAD_FRAME, "a frame must be a map")
    return obj


def ws_frame(payload: bytes, opcode: int) -> bytes:
    """A complete, unmasked, final WebSocket frame (RFC 6455 section 5.2)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        header = struct.pack("!BB", first, n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte limit of control frames."""
    if code is None:
        return ws_frame(b"", OP_CLOSE)
    return ws_frame(code.to_bytes(2, "big") + reason[:123], OP_CLOSE)


PING_FRAME = ws_frame(b"", OP_PING)


def unmask(data: bytes, mask: bytes) -> bytes:
    """A client payload XORed with its 4-byte mask (RFC 6455 section 5.3).

    One big-integer XOR over the whole payload: client frames are at most max_frame_bytes
    (8 KB by default), where this is a few microseconds, without aiohttp's private C helper.
    """
    n = len(data)
    if not n:
        return b""
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def deflate_frame(payload: bytes, opcode: int, wbits: int) -> bytes:
    """A permessage-deflate frame (RFC 7692) compressed from scratch.

    A fresh compressor per message never refers to earlier messages, so the one result is
    valid for every socket that negotiated deflate with a window of at least `wbits`,
    whatever context the client keeps: compress once per room and tick, not per socket.
    """
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    body = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    if body.endswith(b"\x00\x00\xff\xff"):
        body = body[:-4]
    framed = ws_frame(body, opcode)
    return bytes([framed[0] | 0x40]) + framed[1:]  # RSV1: this message is compressed


def frame(obj: Any, codec: Codec) -> bytes:
    """Encode and wrap in one step (replies and one-off frames)."""
    return ws_frame(encode(obj, codec), codec.opcode)
