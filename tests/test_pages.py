"""The pages' server side: GET /dev/token (off by default, loopback only unless --insecure-dev),
and /demo, /console and their static files (served from the package, nothing from a CDN).
What the pages do in a browser is tests/test_browser.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import pytest

from liveroom.auth import Authenticator
from liveroom.errors import ReplyError
from liveroom.redis_local import free_port
from liveroom.safety import UnsafeExposure, check_dev_tokens
from liveroom.web.pages import STATIC, dev_token_request
from tests.support import ROOT, SECRET, AppHub, http, t

PAGES = ("demo.html", "console.html")


def test_dev_token_request_takes_viewers_and_hosts_of_listed_rooms_only() -> None:
    got = dev_token_request({"sub": "ann", "name": "Ann", "role": "host", "rooms": "r1, r2"})
    assert (got.sub, got.name, got.role, got.rooms) == ("ann", "Ann", "host", ["r1", "r2"])
    assert dev_token_request({"sub": "bob", "room": "r1"}).rooms == ["r1"]  # PROTOCOL.md's `room=`
    assert dev_token_request({"sub": "bob"}) == dev_token_request({"sub": "bob", "role": "viewer"})
    for bad in (
        {"sub": "root", "role": "admin"},  # never admin or shop
        {"sub": "shop", "role": "shop", "rooms": "r1"},
        {"sub": "ann", "role": "host"},  # a host token must list its rooms
        {"sub": "ann", "rooms": "bad room"},
        {"sub": ""},
        {"sub": "a b"},
        {"sub": "ann", "name": "x" * 65},
    ):
        with pytest.raises(ReplyError) as exc:
            dev_token_request(bad)
        assert exc.value.code == "bad_field", bad


def test_dev_tokens_only_on_loopback_without_the_switch() -> None:
    check_dev_tokens("127.0.0.1", True, insecure_dev=False)
    check_dev_tokens("0.0.0.0", False, insecure_dev=False)  # off: nothing to refuse
    check_dev_tokens("0.0.0.0", True, insecure_dev=True)
    for host in ("0.0.0.0", "10.0.0.5", "example.com"):
        with pytest.raises(UnsafeExposure):
            check_dev_tokens(host, True, insecure_dev=False)


def test_serve_refuses_dev_tokens_on_a_public_address(tmp_path: Path) -> None:
    """Even with a strong secret: /dev/token would sign host tokens for anyone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEROOM_")}
    env.update(LIVEROOM_HOST="0.0.0.0", LIVEROOM_PORT=str(free_port()), LIVEROOM_SECRETS="s" * 40, LIVEROOM_DEV_TOKENS="1")
    proc = subprocess.run([sys.executable, "-m", "liveroom", "serve"], env=env, cwd=ROOT, capture_output=True, timeout=t(20))
    assert proc.returncode == 2, proc.stderr
    assert b"LIVEROOM_DEV_TOKENS" in proc.stderr and b"--insecure-dev" in proc.stderr


async def test_dev_token_is_404_unless_enabled(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    h = await app_hub()
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{h.base}/dev/token?sub=ann&role=host&rooms=r1") as r:
            assert r.status == 404
        async with s.get(f"{h.base}/demo") as r:  # the pages themselves are always served
            assert r.status == 200


async def test_dev_token_signs_a_host_token_the_api_accepts(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    h = await app_hub(LIVEROOM_DEV_TOKENS="1")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{h.base}/dev/token?sub=ann&name=Ann&role=host&rooms=devroom") as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            body = await r.json()
        async with s.get(f"{h.base}/dev/token?sub=ann&role=admin") as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "bad_field"
    who = Authenticator((SECRET,), False).verify(body["token"])
    assert (who.id, who.name, who.role, who.rooms) == ("ann", "Ann", "host", ("devroom",))
    assert who.exp is not None and body["ttl_s"] <= 3600
    status, _ = await http("POST", f"{h.base}/api/rooms/devroom/notices", body["token"], {"text": "hello"})
    assert status == 200
    status, _ = await http("POST", f"{h.base}/api/rooms/other/notices", body["token"], {"text": "hello"})
    assert status == 403  # a host only of the rooms it asked for


def _local_refs(html: str) -> list[str]:
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    refs += re.findall(r'"(/static/[^"]+)"', html)  # the import map's targets
    return sorted(set(refs))


async def test_pages_and_every_file_they_load_are_served(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    """Every file a page refers to (scripts, styles, the import map's msgpack, the JS client
    and its imports) answers 200 with the right type; nothing is loaded from another host."""
    h = await app_hub()
    seen: set[str] = set()
    async with aiohttp.ClientSession() as s:

        async def get(path: str) -> tuple[int, str, str]:
            async with s.get(h.base + path) as r:
                return r.status, r.content_type, await r.text()

        todo: list[str] = ["/demo", "/console"]
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            status, ctype, text = await get(path)
            assert status == 200, path
            if path.endswith((".js", ".mjs")):
                assert ctype in ("text/javascript", "application/javascript"), (path, ctype)
                base = path.rsplit("/", 1)[0]
                for ref in re.findall(r'^\s*(?:import|export)\b[^"\']*?from\s*["\'](\.{1,2}/[^"\']+|/[^"\']+)["\']', text, re.M):
                    todo.append(os.path.normpath(ref if ref.startswith("/") else f"{base}/{ref}"))
            elif path in ("/demo", "/console"):
                assert ctype == "text/html"
                for ref in _local_refs(text):
                    assert not re.match(r"(https?:)?//", ref), f"{path} loads {ref} from another host"
                    todo.append(ref)
    assert "/static/client/index.js" in seen and "/static/vendor/msgpack/index.mjs" in seen
    assert "/static/vendor/uplot/uPlot.iife.min.js" in seen


def test_vendored_files_carry_their_licenses() -> None:
    for lib in ("uplot", "msgpack"):
        assert (STATIC / "vendor" / lib / "LICENSE").read_text().startswith(("MIT", "The MIT", "Copyright", "ISC")), lib
    for page in PAGES:
        assert "https://" not in (STATIC / page).read_text()
