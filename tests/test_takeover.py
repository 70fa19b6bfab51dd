"""The upgrade side (web/takeover.py) without sockets: the aiohttp internals check, the RFC 6455
handshake checks and the RFC 7692 offer validation."""

from __future__ import annotations

import base64
import os

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from liveroom.web.takeover import (
    AiohttpMismatch,
    HandshakeError,
    UnsupportedVersion,
    check_aiohttp,
    handshake,
    negotiate_deflate,
)


def test_installed_aiohttp_has_what_the_takeover_needs() -> None:
    check_aiohttp()


def test_missing_internals_fail_naming_the_version() -> None:
    """An aiohttp whose RequestHandler lost `_message_tail`: start-up fails, saying which
    aiohttp and what is missing."""

    class Handler:
        _upgraded = transport = _manager = _keepalive_handle = _task_handler = None

        def connection_lost(self) -> None: ...
        def _handle_request(self) -> None: ...
        def finish_response(self) -> None: ...
        def force_close(self) -> None: ...

    with pytest.raises(AiohttpMismatch) as err:
        check_aiohttp(handler=Handler)
    assert f"aiohttp {aiohttp.__version__}" in str(err.value)
    assert "RequestHandler._message_tail" in str(err.value)

    class Server:
        def __init__(self, handler_cancellation: bool = True) -> None: ...

    with pytest.raises(AiohttpMismatch, match="handler_cancellation"):
        check_aiohttp(server=Server)


def request(version: str | None = "13", **extra: str) -> web.Request:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **extra,
    }
    if version is not None:
        headers["Sec-WebSocket-Version"] = version
    return make_mocked_request("GET", "/ws", headers=headers)


def test_version_13_is_accepted() -> None:
    assert handshake(request("13"), deflate=False).response.startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize("version", ["8", "7", "12", "14", "", None])
def test_other_versions_get_426_naming_13(version: str | None) -> None:
    """RFC 6455 4.4: 426 Upgrade Required with Sec-WebSocket-Version: 13."""
    with pytest.raises(UnsupportedVersion) as err:
        handshake(request(version), deflate=False)
    answer = err.value.http_error()
    assert answer.status == 426
    assert answer.headers["Sec-WebSocket-Version"] == "13"


def test_other_handshake_errors_stay_400() -> None:
    with pytest.raises(HandshakeError) as err:
        handshake(request(**{"Sec-WebSocket-Key": "short"}), deflate=False)
    assert not isinstance(err.value, UnsupportedVersion)
    assert err.value.http_error().status == 400


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; unknown_param",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; Server_Max_Window_Bits=11",
    ],
)
def test_invalid_offers_are_declined(offer: str) -> None:
    """RFC 7692 7.1: out-of-range window bits, unknown or duplicate parameters: no deflate."""
    assert negotiate_deflate(offer) == (0, "")


def test_a_declined_offer_falls_back_to_the_next() -> None:
    wbits, ext = negotiate_deflate(
        "permessage-deflate; client_max_window_bits=16, permessage-deflate; server_max_window_bits=12"
    )
    assert wbits == 12 and ext.endswith("server_max_window_bits=12")


@pytest.mark.parametrize(
    ("offer", "wbits"),
    [
        ("permessage-deflate", 15),
        ("permessage-deflate; client_max_window_bits", 15),
        ("permessage-deflate; client_max_window_bits=8", 15),
        ("permessage-deflate; client_max_window_bits=15; server_no_context_takeover", 15),
        ('permessage-deflate; server_max_window_bits="9"', 9),
        ("permessage-deflate; client_no_context_takeover; server_max_window_bits=15", 15),
    ],
)
def test_valid_offers_are_accepted(offer: str, wbits: int) -> None:
    got, ext = negotiate_deflate(offer)
    assert got == wbits
    assert ext.startswith("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
