"""Take an upgraded socket away from aiohttp, so that an idle viewer costs one slim protocol
object instead of aiohttp's request, handler, reader, writer, task and coroutine frames.

aiohttp keeps doing the HTTP side: routing, the upgrade request, admission and refusals. Once
a `/ws` request is admitted, `handshake()` checks the RFC 6455 headers and builds the
`101 Switching Protocols` bytes; `detach()` writes them, hands the transport to our own
`asyncio.Protocol` and makes aiohttp forget the connection without writing or closing it.

This relies on aiohttp internals, verified against aiohttp 3.14.5 (pinned to >=3.14,<3.15 in
pyproject.toml for this reason; re-check them before widening the pin):

- `web_protocol.RequestHandler._upgraded` is true once the HTTP parser has seen a complete
  upgrade request, and from then on every byte read is appended to `_message_tail` (the
  parser's own tail included) until a payload parser is set: those bytes, e.g. a first client
  frame in the same packet as the request, are the start of our WebSocket stream.
- `RequestHandler.connection_lost()` removes the handler from its `Server` (once its task is
  done), cancels its keep-alive timer and, with `transport` already set to None, neither
  closes nor writes the transport; it cancels the handler task only when the server runs with
  `handler_cancellation=True` (the default is False, and liveroom never sets it).
- `RequestHandler._handle_request()` passes the handler's return value to `finish_response()`,
  which calls only `resp.prepare(request)` and `resp.write_eof()`: a response whose two methods
  do nothing (`Detached`) makes aiohttp write nothing, and as `keep_alive` is not true and the
  handler was force-closed, `start()` then ends without touching the transport.

`check_aiohttp()` looks for these when the app is built, so that an aiohttp that changed them
fails at start-up with its version named, not on the first viewer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web, web_protocol, web_request, web_server

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(ValueError):
    """The request is not a valid WebSocket upgrade (answered 400, as aiohttp did)."""

    def http_error(self) -> web.HTTPException:
        return web.HTTPBadRequest(text=str(self))


class UnsupportedVersion(HandshakeError):
    """Not version 13, the only one RFC 6455 defines: 426 naming the one we speak (4.4)."""

    def http_error(self) -> web.HTTPException:
        # RFC 9110 15.5.22: a 426 names the protocol to upgrade to
        return web.HTTPUpgradeRequired(text=str(self), headers={"Sec-WebSocket-Version": "13", "Upgrade": "websocket"})


class AiohttpMismatch(RuntimeError):
    """The installed aiohttp lacks an internal that detach() relies on."""


# RequestHandler's slots and methods named in the module docstring
_HANDLER_ATTRIBUTES = ("_message_tail", "_upgraded", "transport", "_manager", "_keepalive_handle", "_task_handler")
_HANDLER_METHODS = ("connection_lost", "_handle_request", "finish_response", "force_close")


def check_aiohttp(
    handler: type = web_protocol.RequestHandler,
    server: type = web_server.Server,
    request: type = web_request.BaseRequest,
) -> None:
    """Raise AiohttpMismatch, naming aiohttp's version and what is missing, unless every
    aiohttp internal detach() relies on is there (checked when the app is built)."""
    missing = [f"RequestHandler.{a}" for a in _HANDLER_ATTRIBUTES if not hasattr(handler, a)]
    missing += [f"RequestHandler.{m}()" for m in _HANDLER_METHODS if not callable(getattr(handler, m, None))]
    if not isinstance(getattr(request, "protocol", None), property):
        missing.append("BaseRequest.protocol")
    try:
        cancels = inspect.signature(server).parameters["handler_cancellation"].default
    except (KeyError, TypeError, ValueError):
        missing.append("Server(handler_cancellation=...)")
    else:
        if cancels is not False:
            missing.append("Server(handler_cancellation=False) as the default")
    if missing:
        raise AiohttpMismatch(
            f"aiohttp {aiohttp.__version__} lacks {', '.join(missing)}, which liveroom/web/takeover.py "
            "relies on to take upgraded sockets over (verified against aiohttp 3.14.5): install "
            "aiohttp>=3.14,<3.15 as pyproject.toml pins it, or re-check takeover.py against this version"
        )


@dataclass(frozen=True, slots=True)
class Handshake:
    response: bytes  # the complete `101` response head
    deflate_wbits: int  # 0: no permessage-deflate; else the server window we compress with


WINDOW_BITS = re.compile(r"(?:8|9|1[0-5])\Z")  # RFC 7692 7.1.2: 8 to 15, no leading zero


def deflate_params(offer: list[str]) -> dict[str, str | None] | None:
    """An offer's parameters (name -> value, None when it has none), or None when RFC 7692
    says the offer is invalid: an unknown or duplicate parameter, a value where none is
    allowed, a window size that is not 8-15."""
    params: dict[str, str | None] = {}
    for param in offer:
        if not param:
            continue  # a stray ";" (tolerated, as before)
        name, eq, raw = param.partition("=")
        name = name.strip().lower()
        if name in params:
            return None
        value = raw.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]  # a quoted-string value (RFC 7692 7.1) is read unquoted
        params[name] = value if eq else None
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if eq:
                return None
        elif name == "server_max_window_bits":
            if not eq or not WINDOW_BITS.match(value):
                return None
        elif name == "client_max_window_bits":
            if eq and not WINDOW_BITS.match(value):
                return None
        else:
            return None
    return params


def negotiate_deflate(header: str) -> tuple[int, str]:
    """(window bits, response extension header) for the first acceptable permessage-deflate
    offer, or (0, "") when none is.

    An invalid offer (`deflate_params`) is declined and the next one tried. We always answer
    `server_no_context_takeover` (room batches are compressed from scratch once per tick,
    `codec.deflate_frame`) and `client_no_context_takeover` (every client message is inflated
    with a fresh decompressor, so no per-connection zlib window is kept). A valid
    `client_max_window_bits` is a hint we may ignore: we inflate with the largest window.
    `server_max_window_bits` is echoed only when offered (RFC 7692 7.1.2.1) and then caps the
    window the hub compresses this socket's frames with; 8 is valid but declined, as aiohttp
    did (zlib does not support a raw window of 8).
    """
    for offer in header.split(","):
        parts = [p.strip() for p in offer.split(";")]
        if parts[0].lower() != "permessage-deflate":
            continue
        params = deflate_params(parts[1:])
        if params is None:
            continue
        bits = params.get("server_max_window_bits")
        if bits == "8":
            continue
        ext = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        if bits is not None:
            ext += f"; server_max_window_bits={bits}"
        return int(bits or 15), ext
    return 0, ""


def handshake(request: web.Request, deflate: bool) -> Handshake:
    """The RFC 6455 checks aiohttp's `WebSocketResponse` made, and our `101` response.

    The subprotocol is the client's first offered one (some clients fail the handshake unless
    one is picked), as before.
    """
    h = request.headers
    if h.get("Upgrade", "").strip().lower() != "websocket":
        raise HandshakeError("no WebSocket Upgrade header")
    if "upgrade" not in [p.strip().lower() for p in h.get("Connection", "").split(",")]:
        raise HandshakeError("no Connection: upgrade header")
    if h.get("Sec-WebSocket-Version", "").strip() != "13":
        raise UnsupportedVersion(f"unsupported WebSocket version {h.get('Sec-WebSocket-Version', '')!r}; 13 is")
    key = h.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise HandshakeError("bad Sec-WebSocket-Key")
    except binascii.Error:
        raise HandshakeError("bad Sec-WebSocket-Key") from None
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    offered = [p.strip() for p in h.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if offered:
        lines.append(f"Sec-WebSocket-Protocol: {offered[0]}")
    wbits = 0
    if deflate:
        wbits, ext = negotiate_deflate(h.get("Sec-WebSocket-Extensions", ""))
        if wbits:
            lines.append(f"Sec-WebSocket-Extensions: {ext}")
    return Handshake(("\r\n".join(lines) + "\r\n\r\n").encode(), wbits)


class Detached(web.StreamResponse):
    """What the handler returns once the socket is ours: aiohttp writes nothing for it."""

    def __init__(self) -> None:
        super().__init__(status=101)  # for the access log, when one is configured

    async def prepare(self, request: Any) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def detach(request: web.Request, protocol: asyncio.Protocol, response: bytes) -> tuple[asyncio.Transport, bytes]:
    """Write the `101`, give the transport to `protocol`, make aiohttp forget the connection.

    Returns the transport and the bytes aiohttp had already read past the request (the
    start of the WebSocket stream), which the caller must feed to `protocol` itself. Must be
    called without awaiting anything after the checks that decide the upgrade, and the
    handler must then return `Detached()`.
    """
    handler: Any = request.protocol  # aiohttp's RequestHandler
    transport = handler.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away before the upgrade")
    if not getattr(handler, "_upgraded", False):
        # the parser did not switch protocols: later bytes would be parsed as HTTP
        raise HandshakeError("the request was not parsed as an upgrade")
    transport.write(response)
    tail = bytes(handler._message_tail)
    handler._message_tail = b""
    handler.transport = None  # from here aiohttp can neither write nor close it
    handler.connection_lost(None)
    transport.set_protocol(protocol)
    if not transport.is_reading():
        transport.resume_reading()  # aiohttp pauses reading when its tail buffer fills
    return transport, tail
