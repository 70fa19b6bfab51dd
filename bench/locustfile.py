"""Locust users that speak the liveroom wire protocol (/work/shared/PROTOCOL.md) over WebSocket.

    .venv/bin/locust -f bench/locustfile.py --headless -u 500 -r 50 -t 60s \
        --host http://127.0.0.1:8080 --csv bench/out/run

Every op sent with an `id` is one locust request (type "WS", name = the op) timed from send
to its `reply`; an `ok: false` reply is a failure whose exception is named after the protocol
error code (sold_out, rate_limited, unknown_op, ...). Besides the ops:

    connect           WebSocket handshake + welcome frame (failure name: the refusal code)
    comment_delivery  a CommenterUser's comment, send -> seen in a batch on its own socket
    comment_seen      any CommenterUser's comment, send -> seen by a ViewerUser
    bye / error       `bye` frames (by reason) and `error` frames (by code): always failures

Environment: LIVEROOM_SECRETS (token secret, first of the comma-separated list, as the hub
reads it), LIVEROOM_ROOM (default "loadtest"), LIVEROOM_SALE (a sale id for BuyerUser),
LIVEROOM_OPEN_SALE=1 (HostUser opens a flash sale at start; LIVEROOM_SALE_STOCK,
LIVEROOM_SALE_LIMIT, LIVEROOM_SALE_SECONDS shape it). The hub must run with
LIVEROOM_IMPLICIT_ROOMS=1 (or the room be created first: PUT /api/rooms/{room} with a host or
admin token), else every join is refused 404 `no_such_room`.

Locust monkey-patches with gevent: no asyncio/aiohttp/uvloop here and no `liveroom` import.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
import warnings
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import gevent
import jwt
import msgpack
import websocket
from locust import User, between, constant, events, task

DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # config.toml's dev secret
ROOM = os.environ.get("LIVEROOM_ROOM", "loadtest")
CONNECT_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 15.0
TOKEN_TTL_S = 12 * 3600
MARK = "lc@"  # comment text: "lc@<time.time()> ..." so any receiver can time it


def _secret() -> str:
    first = os.environ.get("LIVEROOM_SECRETS", "").split(",")[0].strip()
    return first or DEV_SECRET


def make_token(sub: str, role: str, name: str) -> str:
    claims = {"sub": sub, "name": name, "role": role, "rooms": [ROOM], "exp": int(time.time()) + TOKEN_TTL_S}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short dev secrets are the operator's choice
        return jwt.encode(claims, _secret(), algorithm="HS256")


class LiveroomError(Exception):
    """Base of the per-code exception classes, so locust groups failures by protocol code."""


_ERRORS: dict[str, type[LiveroomError]] = {}


def error_for(code: str, message: str = "") -> LiveroomError:
    code = "".join(c if c.isalnum() or c == "_" else "_" for c in str(code or "unknown")) or "unknown"
    cls = _ERRORS.get(code)
    if cls is None:
        cls = _ERRORS[code] = type(code, (LiveroomError,), {})
    return cls(message[:120]) if message else cls()


def ws_url(host: str, room: str, token: str) -> str:
    """http(s)://host[/prefix] -> ws(s)://host[/prefix]/ws?room=..&token=.."""
    if "://" not in host:
        host = "http://" + host
    u = urlsplit(host)
    if not u.netloc:
        raise ValueError("no --host given (e.g. --host http://127.0.0.1:8080)")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(u.scheme.lower())
    if scheme is None:
        raise ValueError(f"--host must be http://, https://, ws:// or wss://, not {host!r}")
    query = urlencode({"room": room, "token": token, "codec": "msgpack"})
    return f"{scheme}://{u.netloc}{u.path.rstrip('/')}/ws?{query}"


def fire(name: str, started: float, exc: BaseException | None = None, length: int = 0) -> None:
    events.request.fire(
        request_type="WS",
        name=name,
        response_time=(time.perf_counter() - started) * 1000.0,
        response_length=length,
        exception=exc,
        context={},
    )


def fire_ms(name: str, ms: float, exc: BaseException | None = None) -> None:
    events.request.fire(
        request_type="WS", name=name, response_time=max(ms, 0.0), response_length=0, exception=exc, context={}
    )


def sent_at(text: Any) -> float | None:
    """The time.time() a locust commenter embedded in a comment, or None."""
    if not isinstance(text, str) or not text.startswith(MARK):
        return None
    try:
        return float(text[len(MARK) :].split(" ", 1)[0])
    except ValueError:
        return None


class LiveroomUser(User):
    """One WebSocket to the room, a reader greenlet, and replies matched to ops by id."""

    abstract = True
    role = "viewer"
    kind = "viewer"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.sub = f"lc-{self.kind}-{uuid.uuid4().hex[:12]}"
        self.token = make_token(self.sub, self.role, f"{self.kind} {self.sub[-6:]}")
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.welcome: dict[str, Any] = {}
        self.pending: dict[int, tuple[str, float, Callable[[dict[str, Any]], None] | None]] = {}
        self.ids = itertools.count(1)
        self.last_connect_failure = 0.0
        self.stopping = False

    # -- connection ------------------------------------------------------------------------

    def on_start(self) -> None:
        self.connect()

    def on_stop(self) -> None:
        self.stopping = True
        self.pending.clear()
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:
                pass
        if self.reader is not None:
            self.reader.kill(block=False)

    def connected(self) -> bool:
        """Connected, or reconnected now; at most one attempt a second after a failure."""
        if self.ws is not None:
            self.expire_pending()
            return True
        if time.monotonic() - self.last_connect_failure < 1.0:
            return False
        return self.connect()

    def connect(self) -> bool:
        started = time.perf_counter()
        ws = None
        try:
            ws = websocket.create_connection(ws_url(self.host or "", ROOM, self.token), timeout=CONNECT_TIMEOUT_S)
            first = ws.recv()
            frame = self.decode(first)
            if frame.get("t") != "welcome":
                raise error_for("no_welcome", f"first frame was {frame.get('t')!r}")
            ws.settimeout(None)  # the timeout applies to every recv: a quiet room would kill the reader
        except websocket.WebSocketBadStatusException as exc:
            code, message = f"http_{exc.status_code}", ""
            try:
                err = json.loads(exc.resp_body or b"{}").get("error") or {}
                code, message = err.get("code") or code, err.get("message") or ""
            except (ValueError, AttributeError):
                pass
            return self._connect_failed(started, error_for(code, message), ws)
        except Exception as exc:
            return self._connect_failed(started, exc, ws)
        self.ws = ws
        self.welcome = frame
        fire("connect", started, length=len(first))
        self.reader = gevent.spawn(self.read, ws)
        self.on_welcome(frame)
        return True

    def _connect_failed(self, started: float, exc: BaseException, ws: websocket.WebSocket | None) -> bool:
        if ws is not None:
            try:
                ws.close(timeout=0)
            except Exception:
                pass
        self.last_connect_failure = time.monotonic()
        fire("connect", started, exc)
        return False

    @staticmethod
    def decode(data: bytes | str) -> dict[str, Any]:
        if isinstance(data, str):
            return json.loads(data)
        return msgpack.unpackb(data)

    def read(self, ws: websocket.WebSocket) -> None:
        try:
            while True:
                data = ws.recv()
                if not data:  # close frame
                    break
                self.on_frame(self.decode(data), len(data))
        except Exception as exc:
            if not self.stopping and not isinstance(exc, (websocket.WebSocketConnectionClosedException, OSError)):
                fire_ms("reader", 0, exc)
        finally:
            self.disconnected(ws)

    def disconnected(self, ws: websocket.WebSocket) -> None:
        if self.ws is not ws:
            return
        self.ws = None
        try:
            ws.close(timeout=0)
        except Exception:
            pass
        if self.stopping:
            return
        pending, self.pending = self.pending, {}
        for name, started, _ in pending.values():
            fire(name, started, error_for("disconnected", "socket closed before the reply"))

    def expire_pending(self) -> None:
        now = time.perf_counter()
        for fid, (name, started, _) in list(self.pending.items()):
            if now - started > REPLY_TIMEOUT_S:
                del self.pending[fid]
                fire(name, started, error_for("timeout", f"no reply in {REPLY_TIMEOUT_S:.0f} s"))

    # -- frames ----------------------------------------------------------------------------

    def on_frame(self, f: dict[str, Any], size: int) -> None:
        t = f.get("t")
        if t == "batch":
            self.on_batch(f.get("events") or [])
        elif t == "reply":
            entry = self.pending.pop(f.get("id"), None)  # type: ignore[arg-type]
            if entry is None:
                return
            name, started, callback = entry
            if f.get("ok"):
                fire(name, started, length=size)
            else:
                err = f.get("error") or {}
                fire(name, started, error_for(err.get("code", "unknown"), err.get("message", "")), size)
            if callback is not None:
                callback(f)
        elif t == "error":
            err = f.get("error") or {}
            fire_ms("error", 0, error_for(err.get("code", "unknown"), err.get("message", "")))
        elif t == "bye":
            fire_ms("bye", 0, error_for(f.get("reason", "unknown"), f"reconnect={f.get('reconnect')}"))

    def on_welcome(self, welcome: dict[str, Any]) -> None:
        pass

    def on_batch(self, evs: list[dict[str, Any]]) -> None:
        pass

    # -- sending ---------------------------------------------------------------------------

    def call(self, op: str, callback: Callable[[dict[str, Any]], None] | None = None, **fields: Any) -> bool:
        """Send an op with an id; the reply (or its absence) becomes a locust request."""
        ws = self.ws
        if ws is None:
            return False
        fid = next(self.ids)
        self.pending[fid] = (op, time.perf_counter(), callback)
        try:
            ws.send_binary(msgpack.packb({"t": op, "id": fid, **fields}))
        except Exception as exc:
            entry = self.pending.pop(fid, None)
            if entry is not None:
                fire(op, entry[1], exc)
            self.disconnected(ws)
            return False
        return True


class ViewerUser(LiveroomUser):
    """Watches the room; now and then sends a `like` with n taps (1-50). Times every comment
    a CommenterUser sent, from its send to its arrival here ("comment_seen")."""

    weight = 20
    wait_time = between(2, 6)
    kind = "viewer"

    @task(4)
    def watch(self) -> None:
        self.connected()

    @task(1)
    def like(self) -> None:
        if self.connected():
            self.call("like", n=random.randint(1, 50))

    def on_batch(self, evs: list[dict[str, Any]]) -> None:
        now = time.time()
        for e in evs:
            if e.get("type") == "comment":
                t0 = sent_at(e.get("text"))
                if t0 is not None:
                    fire_ms("comment_seen", (now - t0) * 1000.0)


class CommenterUser(LiveroomUser):
    """Comments every 1-3 s (inside the default limit of 2/s, burst 5): "comment" is send ->
    reply, "comment_delivery" is send -> the comment back in a batch on the same socket."""

    weight = 3
    wait_time = between(1, 3)
    kind = "commenter"
    WORDS = ("nice", "how much?", "size M please", "666", "love it", "link?", "wow", "again!", "ship to EU?")

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.n = 0

    @task
    def comment(self) -> None:
        if not self.connected():
            return
        self.n += 1
        text = f"{MARK}{time.time():.6f} #{self.n} {random.choice(self.WORDS)}"
        self.call("comment", text=text)

    def on_batch(self, evs: list[dict[str, Any]]) -> None:
        now = time.time()
        for e in evs:
            if e.get("type") == "comment" and (e.get("user") or {}).get("id") == self.sub:
                t0 = sent_at(e.get("text"))
                if t0 is not None:
                    fire_ms("comment_delivery", (now - t0) * 1000.0)


class BuyerUser(LiveroomUser):
    """Buys one unit of the room's flash sale every 0.5-2 s until the answer (or a `sold_out`
    event) makes further tries pointless (sold_out, limit_reached, ended, closed, no_such_sale).
    The sale comes from LIVEROOM_SALE, else the welcome's first open sale, else the next `sale`
    event, on which every idle buyer buys at once; no sale: idle."""

    weight = 2
    wait_time = between(0.5, 2)
    kind = "buyer"
    FINAL = frozenset({"sold_out", "limit_reached", "ended", "closed", "no_such_sale"})

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.sale: str | None = os.environ.get("LIVEROOM_SALE") or None
        self.done: set[str] = set()
        self.n = 0

    def on_welcome(self, welcome: dict[str, Any]) -> None:
        if self.sale is None:
            for s in (welcome.get("state") or {}).get("sales") or []:
                if s.get("status") == "open" and s.get("id") not in self.done:
                    self.sale = s["id"]
                    break

    def on_batch(self, evs: list[dict[str, Any]]) -> None:
        for e in evs:
            kind = e.get("type")
            if kind == "sale":
                s = e.get("sale") or {}
                if self.sale is None and s.get("status") == "open" and s.get("id") not in self.done:
                    self.sale = s.get("id")
                    self.buy()  # the rush: every buyer tries the moment the sale opens
            elif kind == "sold_out" and self.sale is not None and e.get("sale") == self.sale:
                self.done.add(self.sale)
                self.sale = None

    @task
    def buy(self) -> None:
        if not self.connected() or self.sale is None:
            return
        sale = self.sale
        self.n += 1

        def answered(reply: dict[str, Any]) -> None:
            if not reply.get("ok") and (reply.get("error") or {}).get("code") in self.FINAL:
                self.done.add(sale)
                if self.sale == sale:
                    self.sale = None

        self.call("buy", answered, sale=sale, qty=1, key=f"{self.sub}-{self.n}")


class DrawerUser(LiveroomUser):
    """Enters every lucky draw it sees: `join_draw` for a `join` draw, a comment with the
    keyword for a `keyword` draw (an `online` draw needs nothing but being here). Times
    "draw_result_delay": the draw's ends_at -> its `draw_result` arriving here."""

    weight = 2
    wait_time = between(2, 6)
    kind = "drawer"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.ends: dict[str, int] = {}  # open draw id -> ends_at ms

    def on_welcome(self, welcome: dict[str, Any]) -> None:
        draw = (welcome.get("state") or {}).get("draw")
        if draw:
            self.enter(draw)

    def on_batch(self, evs: list[dict[str, Any]]) -> None:
        for e in evs:
            if e.get("type") == "draw_started":
                self.enter(e.get("draw") or {})
            elif e.get("type") == "draw_result":
                ends = self.ends.pop(str(e.get("draw")), None)
                if ends is not None:
                    fire_ms("draw_result_delay", max(0.0, time.time() * 1000.0 - ends))

    def enter(self, draw: dict[str, Any]) -> None:
        did = str(draw.get("id"))
        if did in self.ends:
            return
        self.ends[did] = int(draw.get("ends_at") or 0)
        if draw.get("mode") == "join":
            self.call("join_draw", draw=did)
        elif draw.get("mode") == "keyword":
            self.call("comment", text=f"{draw.get('keyword')} me please")

    @task
    def watch(self) -> None:
        self.connected()


class HostUser(LiveroomUser):
    """The room's host (one instance): a `notice` every 5 s; with LIVEROOM_OPEN_SALE=1 it opens
    a flash sale (`sale_create`) when it starts; with LIVEROOM_DRAWS=1 it starts a `join`
    draw (LIVEROOM_DRAW_SECONDS long, default 10) whenever none is open; with
    LIVEROOM_MILESTONE=N it sets a likes milestone every N likes at start."""

    fixed_count = 1
    wait_time = constant(5)
    role = "host"
    kind = "host"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.n = 0
        self.draw_ends = 0.0  # ms: when the draw this host started is over

    def on_start(self) -> None:
        if self.connect() and os.environ.get("LIVEROOM_OPEN_SALE") == "1":
            now_ms = int(time.time() * 1000)
            self.call(
                "sale_create",
                sku="LC-SKU-1",
                title="locust flash sale",
                price=990,
                stock=int(os.environ.get("LIVEROOM_SALE_STOCK", "100")),
                limit=int(os.environ.get("LIVEROOM_SALE_LIMIT", "1")),
                starts_at=now_ms,
                ends_at=now_ms + int(float(os.environ.get("LIVEROOM_SALE_SECONDS", "600")) * 1000),
            )
        if self.connected() and os.environ.get("LIVEROOM_MILESTONE"):
            self.call("milestone_set", kind="likes", every=int(os.environ["LIVEROOM_MILESTONE"]), reward="locust hearts")

    @task
    def notice(self) -> None:
        if self.connected():
            self.n += 1
            self.call("notice", text=f"locust notice #{self.n}")
            if os.environ.get("LIVEROOM_DRAWS") == "1" and time.time() * 1000 > self.draw_ends:
                seconds = int(os.environ.get("LIVEROOM_DRAW_SECONDS", "10"))
                self.draw_ends = time.time() * 1000 + seconds * 1000 + 1000
                self.call("draw_start", prize=f"locust prize #{self.n}", winners=3, mode="join", duration_s=seconds)
