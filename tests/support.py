"""Real hub processes and a small WebSocket client for the integration tests."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import msgpack
from aiohttp import web
from aiohttp.test_utils import TestServer

from liveroom import config as config_mod
from liveroom.auth import make_token
from liveroom.config import Config
from liveroom.web.app import build_app
from liveroom.redis_local import on_free_port

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent
# every wait in the tests is scaled by this (slow CI machines: LIVEROOM_TEST_TIMEOUT_FACTOR=3)
FACTOR = float(os.environ.get("LIVEROOM_TEST_TIMEOUT_FACTOR", "1"))


def t(seconds: float) -> float:
    return seconds * FACTOR


async def eventually(
    cond: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, what: str = "condition", every: float = 0.05
) -> None:
    """Poll `cond` (sync or async) until it is true: waiting on what a test waits for,
    instead of sleeping a fixed time that is too long on a fast machine and too short on a
    slow one. `timeout` is scaled by t()."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + t(timeout)
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got  # type: ignore[misc]
        if got:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


def token(sub: str, role: str = "viewer", rooms: list[str] | None = None, name: str | None = None, ttl_s: int = 3600) -> str:
    return make_token(SECRET, sub, name=name or sub, role=role, rooms=rooms, ttl_s=ttl_s)


@dataclass
class HubProcess:
    """`liveroom serve` in a subprocess, configured through the environment only."""

    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HubProcess":
        """Start; a port we chose ourselves that another process took before the hub bound
        it (a busy CI machine) is replaced by another one."""
        if self.port:
            return self._start_once()

        def at(port: int) -> "HubProcess":
            self.port = port
            return self._start_once()

        def taken(exc: Exception) -> bool:
            if "address already in use" not in str(exc).lower():
                return False
            if self.log_path is not None:
                self.log_path.unlink(missing_ok=True)  # that attempt's log: not a crash to keep
            return True

        return on_free_port(at, taken, tries=4)

    def _start_once(self) -> "HubProcess":
        env = dict(os.environ)
        env.update(
            {
                "LIVEROOM_HOST": "127.0.0.1",
                "LIVEROOM_PORT": str(self.port),
                "LIVEROOM_SECRETS": SECRET,
                "LIVEROOM_LOG": "INFO",
                # every test's sockets come from 127.0.0.1: the per-address cap on anonymous
                # viewers is for tests/test_hardening.py, which sets it
                "LIVEROOM_MAX_ANON_PER_IP": "0",
                "LIVEROOM_MAX_ANON_ROOMS_PER_IP": "0",
                # the suite joins rooms without creating them; tests of room creation set "0"
                "LIVEROOM_IMPLICIT_ROOMS": "1",
            }
        )
        env.update(self.env)
        import tempfile

        fd, name = tempfile.mkstemp(prefix="liveroom-hub-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liveroom", "serve", "--workers", "1"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + t(20)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=0.5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        text = self.log()
        self.stop()
        raise RuntimeError(f"hub did not become healthy:\n{text}")

    def log(self, since: int = 0) -> str:
        """The hub's output; from character `since` on (a shared hub: what one test caused,
        `since=len(hub.log())` taken at its start)."""
        return self.log_path.read_text(errors="replace")[since:] if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the hub; its log is deleted unless the hub had exited by itself (a crash
        worth reading: the path is printed)."""
        crashed = self.proc is not None and self.proc.poll() not in (None, 0)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(t(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if self.log_path is not None:
            if crashed:
                print(f"hub {self.port} exited by itself ({self.proc.returncode if self.proc else '?'}): {self.log_path}")
            else:
                self.log_path.unlink(missing_ok=True)
                self.log_path = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


# where a hub process's Traceback lines come from: our code, and aiohttp's request handling
TRACEBACK_LOGGERS = ("liveroom", "aiohttp")


class _Tracebacks(logging.Handler):
    """Keeps the records logged with an exception: what a hub process prints as a Traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@dataclass
class AppHub:
    """A hub app (`build_app`) served in the test's own process and event loop by
    pytest-aiohttp's `aiohttp_server`: the same endpoints as a HubProcess, without the
    1-3 s of starting an interpreter, for tests about one hub that need no signals."""

    server: TestServer
    cfg: Config
    _tracebacks: _Tracebacks

    @property
    def port(self) -> int:
        return int(self.server.port)  # type: ignore[arg-type]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app(self) -> web.Application:
        return self.server.app

    def tracebacks(self) -> list[str]:
        """Every exception logged (by liveroom or aiohttp) since the hub started: what a hub
        process prints as a Traceback. (In one process, other in-process hubs' too.)"""
        return [f"{r.name}: {r.getMessage()}" for r in self._tracebacks.records]


class HubTestServer(TestServer):
    """aiohttp's TestServer, run as `liveroom serve` runs the app. The test server cancels
    a request handler whose connection is lost (handler_cancellation=True); web/takeover.py
    takes the socket away from aiohttp, which aiohttp sees as the connection lost, and relies
    on the handler going on (AppRunner's default, which `serve` keeps)."""

    def __init__(self, app: web.Application, cfg: Config) -> None:
        super().__init__(app, host="127.0.0.1")
        self._drain_timeout_s = cfg.server.drain_timeout_s

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs.update(handler_cancellation=False, shutdown_timeout=self._drain_timeout_s, access_log=None)
        return web.AppRunner(self.app, **kwargs)


async def start_app_hub(aiohttp_client: Callable[..., Awaitable[Any]], redis_url: str, **env: str) -> AppHub:
    """Build the app from LIVEROOM_* variables (as `liveroom serve` does) and serve it with
    pytest-aiohttp's `aiohttp_client` fixture (which stops it after the test)."""
    full = {
        "LIVEROOM_HOST": "127.0.0.1",
        "LIVEROOM_REDIS": redis_url,
        "LIVEROOM_SECRETS": SECRET,
        "LIVEROOM_IMPLICIT_ROOMS": "1",  # as HubProcess: tests of room creation set "0"
        **env,
    }
    cfg = config_mod.load(None, env={k: str(v) for k, v in full.items()})
    handler = _Tracebacks()
    for name in TRACEBACK_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    app = build_app(cfg)

    async def forget_handler(_app: web.Application) -> None:
        for name in TRACEBACK_LOGGERS:
            logging.getLogger(name).removeHandler(handler)

    app.on_cleanup.append(forget_handler)
    server = HubTestServer(app, cfg)
    await aiohttp_client(server)
    return AppHub(server, cfg, handler)


@dataclass
class Client:
    """One viewer over a real WebSocket; collects events and answers replies by id."""

    ws: aiohttp.ClientWebSocketResponse
    session: aiohttp.ClientSession
    codec: str = "msgpack"
    welcome: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    dropped: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _next_id: int = 0
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(
        cls,
        base: str,
        room: str,
        tok: str | None,
        codec: str = "msgpack",
        since: int | None = None,
        epoch: str | None = None,
        compress: int = 15,
        connector: aiohttp.BaseConnector | None = None,
    ) -> "Client":
        session = aiohttp.ClientSession(connector=connector)
        params = {"room": room, "codec": codec}
        if tok:
            params["token"] = tok
        if since is not None:
            params["since"] = str(since)
        if epoch is not None:
            params["epoch"] = epoch
        try:
            ws = await session.ws_connect(
                base + "/ws", params=params, timeout=aiohttp.ClientWSTimeout(ws_close=t(5)), compress=compress
            )
        except BaseException:
            await session.close()
            raise
        c = cls(ws, session, codec)
        first = await asyncio.wait_for(ws.receive(), t(5))
        c.welcome = c.decode(first.data)
        assert c.welcome["t"] == "welcome", c.welcome
        c._reader = asyncio.create_task(c._read())
        return c

    def decode(self, data: bytes | str) -> dict[str, Any]:
        if self.codec == "json":
            import json

            return json.loads(data)
        return msgpack.unpackb(data)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    f = self.decode(msg.data)
                    self.frames.append(f)
                    if f["t"] == "batch":
                        self.events.extend(f["events"])
                        self.dropped += f.get("dropped", 0)
                    elif f["t"] == "reply":
                        self.replies[f["id"]] = f
                    self._changed.set()
        finally:
            self.closed.set()
            self._changed.set()

    async def send(self, obj: dict[str, Any]) -> None:
        if self.codec == "json":
            import json

            await self.ws.send_str(json.dumps(obj))
        else:
            await self.ws.send_bytes(msgpack.packb(obj))

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send an op with an id and wait for its reply."""
        self._next_id += 1
        fid = self._next_id
        await self.send({"t": op, "id": fid, **fields})
        await self.wait_for(lambda: fid in self.replies, what=f"reply to {op}")
        return self.replies[fid]

    async def wait_for(self, cond: Any, timeout: float = 5.0, what: str = "condition") -> None:
        deadline = asyncio.get_running_loop().time() + t(timeout)
        while not cond():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            self._changed.clear()
            if cond():
                return
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def last_frame(self, t_: str) -> dict[str, Any] | None:
        for f in reversed(self.frames):
            if f["t"] == t_:
                return f
        return None

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, t(5))
            except (asyncio.TimeoutError, Exception):
                self._reader.cancel()
        await self.session.close()


async def http(method: str, url: str, tok: str | None, body: Any = None) -> tuple[int, Any]:
    """One HTTP API call: (status, the JSON body, or the text of a CSV answer)."""
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, json=body, headers=headers) as r:
            if r.content_type == "text/csv":
                return r.status, await r.text()
            return r.status, await r.json()


def stalled_viewer(port: int, room: str, tok: str) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that never reads after the upgrade: a
    phone that stopped reading (tests/test_slow_viewer.py, bench/chaoslib.py)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws?room={room}&token={tok} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise ConnectionError(head.decode(errors="replace"))
    return s


def server_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete server frames (unmasked) at the start of `buf`, as (opcode, payload),
    and what is left of it: for tests that read a raw socket."""
    frames: list[tuple[int, bytes]] = []
    while len(buf) >= 2:
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            n, at = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            n, at = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < at + n:
            break
        frames.append((buf[0] & 0x0F, buf[at : at + n]))
        buf = buf[at + n :]
    return frames, buf
