"""deploy/nginx.conf, the file docs/deploy.md tells operators to install, run by a real
nginx in front of two real hubs: TLS, the upgrade, the client address, idle sockets."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from liveroom.config import Config
from liveroom.redis_local import RedisProcess, free_port

from .conftest import HUB_ENV
from .support import ROOT, Client, HubProcess, t, token

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test installs Debian's package)")
SITE = ROOT / "deploy" / "nginx.conf"


def site_for_test(site: str, port: int, upstreams: list[str], cert: Path, key: Path) -> str:
    """deploy/nginx.conf with only what differs on a test machine replaced: the listen
    address, the upstream hubs and the certificate. Every other line is the shipped one."""
    out, n_servers = [], 0
    in_upstream = False
    for line in site.splitlines():
        stripped = line.strip()
        if stripped.startswith("upstream "):
            in_upstream = True
        elif in_upstream and stripped == "}":
            in_upstream = False
        if in_upstream and re.match(r"server \S+:\d+", stripped):
            if n_servers == 0:
                rest = stripped.split(None, 2)[2]  # the options after the address
                line = "\n".join(f"    server {u} {rest}" for u in upstreams)
            else:
                line = ""
            n_servers += 1
        elif stripped.startswith("listen 443 ssl"):
            line = f"    listen 127.0.0.1:{port} ssl;"
        elif stripped.startswith("ssl_certificate "):
            line = f"    ssl_certificate {cert};"
        elif stripped.startswith("ssl_certificate_key "):
            line = f"    ssl_certificate_key {key};"
        out.append(line)
    assert n_servers >= 2, "deploy/nginx.conf lost its upstream servers"
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def proxied(redis1: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[HubProcess]]]:
    """nginx on a free port with deploy/nginx.conf, in front of two hubs that trust it."""
    env = {
        **HUB_ENV,
        "LIVEROOM_REDIS": redis1.url,
        "LIVEROOM_TRUST_FORWARDED": "1",
        "LIVEROOM_FORWARDED_HOPS": "1",
        "LIVEROOM_MAX_ANON_PER_IP": "1",
        "LIVEROOM_PING_AFTER_S": "1",
        "LIVEROOM_IDLE_TIMEOUT_S": "4",
    }
    hubs = [HubProcess(env).start() for _ in range(2)]
    d = tmp_path_factory.mktemp("nginx")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    port = free_port()
    upstreams = [h.base.removeprefix("http://") for h in hubs]
    (d / "liveroom.conf").write_text(site_for_test(SITE.read_text(), port, upstreams, cert, key))
    user = "user root;\n" if os.geteuid() == 0 else ""  # its workers write temp files in our dir
    temps = "\n".join(f"    {k}_temp_path {d / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (d / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} warn;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n    access_log off;\n{temps}\n    include {d / 'liveroom.conf'};\n}}\n"
    )
    assert NGINX is not None
    proc = subprocess.Popen([NGINX, "-e", str(d / "error.log"), "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"])
    deadline = time.monotonic() + t(10)
    while True:
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start: " + (d / "error.log").read_text())
            time.sleep(0.05)
    try:
        yield f"https://127.0.0.1:{port}", hubs
    finally:
        proc.terminate()
        proc.wait(10)
        for h in hubs:
            h.stop()


def via(addr: str = "127.0.0.2") -> aiohttp.TCPConnector:
    """A connection to nginx from another loopback address: what a different phone is."""
    return aiohttp.TCPConnector(ssl=False, local_addr=(addr, 0))


async def connections(h: HubProcess) -> float:
    async with aiohttp.ClientSession() as s, s.get(h.base + "/metrics") as r:
        text = await r.text()
    m = re.search(r"^liveroom_connections(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert m, "liveroom_connections not exported"
    return float(m.group(1))


async def test_comments_cross_hubs_through_nginx(proxied: tuple[str, list[HubProcess]]) -> None:
    base, hubs = proxied
    before = [await connections(h) for h in hubs]
    viewers = [await Client.connect(base, "nginx-a", token(f"u{i}"), connector=via()) for i in range(4)]
    try:
        after = [await connections(h) for h in hubs]
        # least_conn spread them: both hubs hold viewers of the room
        assert all(a > b for a, b in zip(after, before)), (before, after)
        r = await viewers[0].call("comment", text="through the proxy")
        assert r["ok"], r
        for v in viewers:
            await v.wait_for(lambda v=v: any(e.get("text") == "through the proxy" for e in v.of_type("comment")))
    finally:
        for v in viewers:
            await v.close()


async def admitted(base: str, addr: str, held: list[Any], forged: str | None = None) -> bool:
    """An anonymous viewer from `addr` gets in (and stays, in `held`), or is refused 429."""
    headers = {"X-Forwarded-For": forged} if forged else None
    s = aiohttp.ClientSession(connector=via(addr), headers=headers)
    held.append(s)
    try:
        ws = await s.ws_connect(base + "/ws", params={"room": "nginx-b"})
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 503, exc  # overloaded: this address has its share of anonymous sockets
        return False
    first = await ws.receive()
    assert first.type == aiohttp.WSMsgType.BINARY, first
    held.append(ws)
    return True


async def test_per_address_limits_see_the_client_address(proxied: tuple[str, list[HubProcess]]) -> None:
    """Every hub socket comes from nginx's 127.0.0.1: the anonymous cap (1 per hub here)
    must count the address nginx saw, whatever a client writes in X-Forwarded-For."""
    base, _ = proxied
    held: list[Any] = []
    try:
        got_in = [await admitted(base, "127.0.0.2", held, forged=f"10.9.9.{i}") for i in range(3)]
        assert got_in.count(False) >= 1, "three anonymous sockets from one address, two hubs capped at one each"
        assert got_in.count(True) >= 1
        assert await admitted(base, "127.0.0.3", held), "another address has a cap of its own"
    finally:
        for x in reversed(held):
            await x.close()


async def test_idle_viewer_kept_by_ping_through_nginx(proxied: tuple[str, list[HubProcess]]) -> None:
    """The hub pings a silent viewer (1 s here) and the client's pong comes back through
    nginx, so a viewer silent for longer than the hub's idle timeout (4 s) stays."""
    base, _ = proxied
    v = await Client.connect(base, "nginx-c", token("idle"), connector=via())
    try:
        await asyncio.sleep(t(6))
        assert not v.closed.is_set(), v.frames[-3:]
        author = await Client.connect(base, "nginx-c", token("author"), connector=via("127.0.0.4"))
        await author.call("comment", text="still here?")
        await v.wait_for(lambda: any(e.get("text") == "still here?" for e in v.of_type("comment")))
        await author.close()
    finally:
        await v.close()


def test_proxy_timers_outlast_the_hubs_idle_rules() -> None:
    """nginx must never be the one to cut a quiet viewer: its read/send timeouts are longer
    than the hub's default ping and idle timeout, so the hub decides (and sends `bye`)."""
    site = SITE.read_text()
    idle = Config().limits.idle_timeout_s
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"{directive}\s+(\d+)s;", site)
        assert m, directive
        assert int(m.group(1)) > idle, (directive, m.group(1), idle)
