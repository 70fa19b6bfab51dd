"""One typed configuration object, loaded once at start-up.

`load()` reads `config.toml` (every key optional, defaults below), then applies the
`LIVEROOM_*` environment overrides of PROTOCOL.md. Nothing deeper in the package reads
files or the environment: it is handed the `Config` it needs.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping


class ConfigError(ValueError):
    """A setting is missing, of the wrong type or out of range; the message names it."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1  # 0 = one per core ("auto" on the command line)
    drain_timeout_s: float = 5.0
    trust_forwarded: bool = False  # take the client IP from X-Forwarded-For (behind a proxy)
    forwarded_hops: int = 1  # proxies of ours in front: the client is this many entries from the right
    internal_host: str = "127.0.0.1"  # /metrics and /readyz here when internal_port is set
    internal_port: int = 0  # 0: /metrics and /readyz on the public port


@dataclass(frozen=True, slots=True)
class AuthConfig:
    secrets: tuple[str, ...] = ()
    anonymous: bool = False
    dev_tokens: bool = False  # GET /dev/token signs tokens for anyone (demo pages; loopback only unless --insecure-dev)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    urls: tuple[str, ...] = ()  # one per shard; empty and no cluster: start a local server
    # Redis Cluster seed node URLs: the client starts from any one that answers, so a hub
    # starts while one of them is down (a string in config.toml or the environment is
    # comma-separated, as `urls` is)
    cluster: tuple[str, ...] = ()
    timeout_ms: int = 800  # a command that takes longer answers `unavailable`
    # each pub/sub connection publishes a probe to itself this often and drops the
    # connection (resubscribe, repair from history) if it does not come back within
    # probe_timeout_ms: a half-open socket is found in seconds; 0 = no probe
    probe_interval_ms: int = 1000
    probe_timeout_ms: int = 3000


@dataclass(frozen=True, slots=True)
class RoomConfig:
    tick_ms: int = 100
    # a room's batch goes out at once after a quiet spell, then at most every
    # clamp(hub viewers / flush_writes_per_s, flush_gap_ms, tick_ms) (core/pacing.py)
    flush_gap_ms: int = 20
    flush_writes_per_s: int = 50000  # 0: one batch per tick, as before
    viewer_comment_cap: int = 20  # comments/s sent to one viewer before sampling; 0 = no cap
    comment_rate: float = 2.0  # comments/s one user may send in a room (all hubs together); 0 = no limit
    comment_burst: int = 5
    comment_max_chars: int = 200
    history_len: int = 1000  # durable events kept per room for resume
    presence_interval_ms: int = 1000  # how often online counts are refreshed and pushed
    hub_ttl_ms: int = 10000  # a hub not heard from for this long has its viewers removed
    implicit_rooms: bool = False  # the first join creates a room (dev, tests, benchmarks); else PUT /api/rooms/{room} first
    ttl_s: float = 259200.0  # a room that is over (no viewer, live session, open sale or draw, pending order) is deleted this long after
    sweep_interval_ms: int = 1000  # how often rooms over for ttl_s are looked for (one hub per shard each round)


@dataclass(frozen=True, slots=True)
class SalesConfig:
    pay_window_s: float = 900.0  # a pending order not confirmed in this time expires
    reaper_interval_ms: int = 1000  # how often unpaid orders are looked for
    orders_retention_s: float = 604800.0  # orders stream entries older than this are trimmed, once every consumer group has them
    # a buy is answered once this many replicas have it (WAIT), so an acked order survives
    # a failover; not waited on when the shard has no replica; 0 = never wait
    wait_replicas: int = 1
    wait_ms: int = 50  # a buy not on a replica by then answers `unavailable` (retry, same key)
    # sold-out fast path (core/soldout.py): a hub keeps up to this many answered keys of a
    # sold-out sale to answer new keys itself; above it, or 0, every buy goes to Redis
    fast_path_keys: int = 500_000


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    idle_close_s: float = 7200.0  # a live session with no viewer this long ends by itself
    retention_days: float = 90.0  # an ended session's figures are kept this long (refreshed by ending it again)


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    url: str = ""  # POST every order event here; empty: webhooks off
    secret: str = ""  # HMAC-SHA256 key of the X-Liveroom-Signature header (required with url)
    timeout_s: float = 5.0  # one POST answering later counts as a failure
    in_hubs: bool = True  # every hub delivers (one consumer each); false: only `liveroom webhooks`
    group: str = "liveroom-webhooks"  # the consumer group on each orders stream
    concurrency: int = 16  # deliveries in flight per stream, per process
    retry_base_s: float = 0.5  # first retry delay; doubles per attempt, with jitter
    retry_max_s: float = 30.0  # retry delay cap
    attempts: int = 10  # tries in a row before the entry is left pending for claim_idle_s
    claim_idle_s: float = 60.0  # a pending entry nobody touched this long is taken over (XAUTOCLAIM)


@dataclass(frozen=True, slots=True)
class ModerationConfig:
    words_file: str = ""  # the global word list: one word a line (# comments); empty: none
    action: str = "refuse"  # what a match does where a room set nothing: refuse | mask | shadow
    contacts: bool = False  # the built-in contact-details rule for every room (rooms may switch it on)
    # mute with escalate: true gives the user's next step in the room (seconds, -1 forever)
    mute_ladder_s: tuple[int, ...] = (86400, 604800, 1296000, -1)
    max_words: int = 10000  # words in one room's list


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_frame_bytes: int = 8192  # larger client frames: `bye too_large`, close 1009
    frame_rate: float = 20.0  # frames/s one connection may send; 0 = no limit
    frame_burst: int = 40
    max_strikes: int = 20  # bad or rate-limited frames before `bye abuse`, close 1008
    max_conn_per_ip: int = 0  # 0 = no limit
    max_connections: int = 19000  # per hub process; above it new sockets get 503 overloaded
    outbox_bytes: int = 256 * 1024  # waiting bytes before a connection counts as slow
    deflate: bool = True  # permessage-deflate for clients that offer it (compressed once per tick)
    socket_sndbuf_bytes: int = 65536  # kernel send buffer per viewer socket; 0 = kernel default
    ping_after_s: float = 30.0  # a socket silent this long gets a WebSocket ping
    idle_timeout_s: float = 60.0  # a socket silent this long (no pong either) is closed
    header_timeout_s: float = 10.0  # a new socket must send its request (and a kept-alive one its next) in this time
    max_pending: int = 1000  # sockets not upgraded (nor answered) at once; over it the oldest are closed
    max_anon_per_ip: int = 20  # anonymous viewers' sockets per client IP; 0 = no limit
    max_anon_rooms_per_ip: int = 10  # distinct rooms anonymous viewers of one IP may hold; 0 = no limit
    like_rate: float = 100.0  # likes (taps) per second one connection may add (burst 3 s of it); more are dropped; 0 = no limit
    resume_rate: float = 20.0  # joins with `since` per second per client IP (burst 5 s of it): 429 past it; 0 = no limit
    # bytes waiting for all this hub's sockets together; past it the sockets with the most
    # waiting are sent `bye slow` first (each is still bounded by outbox_bytes); 0 = no bound
    hub_outbox_bytes: int = 256 * 1024 * 1024
    retry_ms: int = 2000  # a join refused because Redis did not answer: retry after 1-2x this (`retry_ms`)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    room: RoomConfig = field(default_factory=RoomConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sales: SalesConfig = field(default_factory=SalesConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)


_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "auth": AuthConfig,
    "redis": RedisConfig,
    "room": RoomConfig,
    "limits": LimitsConfig,
    "sales": SalesConfig,
    "webhooks": WebhooksConfig,
    "moderation": ModerationConfig,
    "sessions": SessionsConfig,
}

# env var -> (section, key)
_ENV: dict[str, tuple[str, str]] = {
    "LIVEROOM_HOST": ("server", "host"),
    "LIVEROOM_PORT": ("server", "port"),
    "LIVEROOM_WORKERS": ("server", "workers"),
    "LIVEROOM_REDIS": ("redis", "urls"),
    "LIVEROOM_REDIS_CLUSTER": ("redis", "cluster"),
    "LIVEROOM_SECRETS": ("auth", "secrets"),
    "LIVEROOM_ANONYMOUS": ("auth", "anonymous"),
    "LIVEROOM_DEV_TOKENS": ("auth", "dev_tokens"),
    "LIVEROOM_VIEWER_COMMENT_CAP": ("room", "viewer_comment_cap"),
    "LIVEROOM_COMMENT_RATE": ("room", "comment_rate"),
    "LIVEROOM_TICK_MS": ("room", "tick_ms"),
    "LIVEROOM_FLUSH_GAP_MS": ("room", "flush_gap_ms"),
    "LIVEROOM_FLUSH_WRITES_PER_S": ("room", "flush_writes_per_s"),
    "LIVEROOM_HUB_TTL_MS": ("room", "hub_ttl_ms"),
    "LIVEROOM_MAX_CONN_PER_IP": ("limits", "max_conn_per_ip"),
    "LIVEROOM_FRAME_RATE": ("limits", "frame_rate"),
    "LIVEROOM_OUTBOX_BYTES": ("limits", "outbox_bytes"),
    "LIVEROOM_HUB_OUTBOX_BYTES": ("limits", "hub_outbox_bytes"),
    "LIVEROOM_RETRY_MS": ("limits", "retry_ms"),
    "LIVEROOM_PROBE_INTERVAL_MS": ("redis", "probe_interval_ms"),
    "LIVEROOM_PROBE_TIMEOUT_MS": ("redis", "probe_timeout_ms"),
    "LIVEROOM_MAX_FRAME_BYTES": ("limits", "max_frame_bytes"),
    "LIVEROOM_PING_AFTER_S": ("limits", "ping_after_s"),
    "LIVEROOM_IDLE_TIMEOUT_S": ("limits", "idle_timeout_s"),
    "LIVEROOM_HEADER_TIMEOUT_S": ("limits", "header_timeout_s"),
    "LIVEROOM_MAX_PENDING": ("limits", "max_pending"),
    "LIVEROOM_MAX_ANON_PER_IP": ("limits", "max_anon_per_ip"),
    "LIVEROOM_MAX_ANON_ROOMS_PER_IP": ("limits", "max_anon_rooms_per_ip"),
    "LIVEROOM_LIKE_RATE": ("limits", "like_rate"),
    "LIVEROOM_RESUME_RATE": ("limits", "resume_rate"),
    "LIVEROOM_INTERNAL_PORT": ("server", "internal_port"),
    "LIVEROOM_TRUST_FORWARDED": ("server", "trust_forwarded"),
    "LIVEROOM_FORWARDED_HOPS": ("server", "forwarded_hops"),
    "LIVEROOM_REDIS_TIMEOUT_MS": ("redis", "timeout_ms"),
    "LIVEROOM_PAY_WINDOW_S": ("sales", "pay_window_s"),
    "LIVEROOM_SALES_WAIT_REPLICAS": ("sales", "wait_replicas"),
    "LIVEROOM_SALES_WAIT_MS": ("sales", "wait_ms"),
    "LIVEROOM_SALES_FAST_PATH_KEYS": ("sales", "fast_path_keys"),
    "LIVEROOM_IMPLICIT_ROOMS": ("room", "implicit_rooms"),
    "LIVEROOM_HISTORY_LEN": ("room", "history_len"),
    "LIVEROOM_ROOM_TTL_S": ("room", "ttl_s"),
    "LIVEROOM_ORDERS_RETENTION_S": ("sales", "orders_retention_s"),
    "LIVEROOM_SESSION_IDLE_CLOSE_S": ("sessions", "idle_close_s"),
    "LIVEROOM_SESSION_RETENTION_DAYS": ("sessions", "retention_days"),
    "LIVEROOM_WEBHOOK_URL": ("webhooks", "url"),
    "LIVEROOM_WEBHOOK_SECRET": ("webhooks", "secret"),
    "LIVEROOM_WEBHOOK_TIMEOUT_S": ("webhooks", "timeout_s"),
    "LIVEROOM_WEBHOOK_IN_HUBS": ("webhooks", "in_hubs"),
    "LIVEROOM_WEBHOOK_GROUP": ("webhooks", "group"),
    "LIVEROOM_WEBHOOK_RETRY_BASE_S": ("webhooks", "retry_base_s"),
    "LIVEROOM_WEBHOOK_RETRY_MAX_S": ("webhooks", "retry_max_s"),
    "LIVEROOM_WEBHOOK_CLAIM_IDLE_S": ("webhooks", "claim_idle_s"),
    "LIVEROOM_WORDS_FILE": ("moderation", "words_file"),
    "LIVEROOM_CONTACT_RULE": ("moderation", "contacts"),
}


def _coerce(section: str, key: str, kind: Any, value: Any) -> Any:
    name = f"{section}.{key}"
    try:
        if kind in ("bool", bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            if isinstance(value, bool):
                return value
            raise ValueError(value)
        if kind in ("int", int):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind in ("float", float):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind in ("str", str):
            if not isinstance(value, str):
                raise ValueError(value)
            return value
        if "tuple[int" in str(kind):  # a list of integers (moderation.mute_ladder_s)
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or any(isinstance(v, (bool, float)) for v in items):
                raise ValueError(value)
            return tuple(int(v) for v in items)
        if "tuple" in str(kind):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: bad value {value!r} (expected {kind})") from None
    raise ConfigError(f"{name}: unsupported type {kind}")


def _check(cfg: Config) -> Config:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ConfigError(what)

    need(0 < cfg.server.port < 65536 or cfg.server.port == 0, f"server.port: {cfg.server.port}")
    need(cfg.server.workers >= 0, f"server.workers: {cfg.server.workers}")
    need(10 <= cfg.room.tick_ms <= 5000, f"room.tick_ms must be 10..5000: {cfg.room.tick_ms}")
    need(cfg.room.flush_gap_ms >= 1, f"room.flush_gap_ms must be >= 1: {cfg.room.flush_gap_ms}")  # above tick_ms: per tick
    need(cfg.room.flush_writes_per_s >= 0, "room.flush_writes_per_s must be >= 0")
    need(cfg.room.viewer_comment_cap >= 0, "room.viewer_comment_cap must be >= 0")
    need(cfg.room.comment_rate >= 0, "room.comment_rate must be >= 0")
    need(cfg.room.comment_max_chars > 0, "room.comment_max_chars must be > 0")
    need(cfg.room.history_len >= 10, "room.history_len must be >= 10")
    need(cfg.limits.max_frame_bytes >= 256, "limits.max_frame_bytes must be >= 256")
    need(cfg.limits.outbox_bytes >= 4096, "limits.outbox_bytes must be >= 4096")
    need(cfg.limits.frame_rate >= 0, "limits.frame_rate must be >= 0")
    need(cfg.limits.hub_outbox_bytes >= 0, "limits.hub_outbox_bytes must be >= 0 (0: no bound)")
    need(cfg.limits.retry_ms > 0, "limits.retry_ms must be > 0")
    need(cfg.redis.probe_interval_ms >= 0, "redis.probe_interval_ms must be >= 0 (0: no probe)")
    need(cfg.redis.probe_timeout_ms > 0, "redis.probe_timeout_ms must be > 0")
    need(cfg.limits.ping_after_s > 0, "limits.ping_after_s must be > 0")
    need(cfg.limits.idle_timeout_s > cfg.limits.ping_after_s, "limits.idle_timeout_s must be > limits.ping_after_s")
    need(cfg.sales.pay_window_s > 0, "sales.pay_window_s must be > 0")
    need(cfg.room.ttl_s > 0, "room.ttl_s must be > 0")
    need(cfg.room.sweep_interval_ms > 0, "room.sweep_interval_ms must be > 0")
    need(cfg.sales.orders_retention_s > 0, "sales.orders_retention_s must be > 0")
    need(cfg.sales.wait_replicas >= 0 and cfg.sales.wait_ms >= 0, "sales.wait_replicas and sales.wait_ms must be >= 0")
    need(cfg.sales.fast_path_keys >= 0, "sales.fast_path_keys must be >= 0 (0: the sold-out fast path is off)")
    need(cfg.sales.wait_ms < cfg.redis.timeout_ms, "sales.wait_ms must be below redis.timeout_ms (a buy is answered after it)")
    need(cfg.sessions.idle_close_s > 0, "sessions.idle_close_s must be > 0")
    need(cfg.sessions.retention_days > 0, "sessions.retention_days must be > 0")
    need(cfg.server.forwarded_hops >= 1, "server.forwarded_hops must be >= 1")
    need(cfg.limits.header_timeout_s > 0, "limits.header_timeout_s must be > 0")
    need(cfg.limits.max_pending >= 1, "limits.max_pending must be >= 1")
    need(cfg.redis.timeout_ms >= 50, "redis.timeout_ms must be >= 50")
    hooks = cfg.webhooks
    if hooks.url:
        need(hooks.url.startswith(("http://", "https://")), f"webhooks.url: not an http(s) URL: {hooks.url!r}")
        need(bool(hooks.secret), "webhooks.secret: required when webhooks.url is set")
    need(hooks.timeout_s > 0, "webhooks.timeout_s must be > 0")
    need(hooks.concurrency >= 1, "webhooks.concurrency must be >= 1")
    need(0 < hooks.retry_base_s <= hooks.retry_max_s, "webhooks: need 0 < retry_base_s <= retry_max_s")
    need(hooks.attempts >= 1, "webhooks.attempts must be >= 1")
    need(hooks.claim_idle_s > 0, "webhooks.claim_idle_s must be > 0")
    mod = cfg.moderation
    need(mod.action in ("refuse", "mask", "shadow"), f"moderation.action: refuse, mask or shadow: {mod.action!r}")
    need(bool(mod.mute_ladder_s) and all(s > 0 or s == -1 for s in mod.mute_ladder_s), "moderation.mute_ladder_s: seconds > 0 or -1")
    for url in cfg.redis.urls:
        need(url.startswith(("redis://", "rediss://", "unix://")), f"redis.urls: bad URL {url!r}")
    for url in cfg.redis.cluster:
        need(url.startswith(("redis://", "rediss://")), f"redis.cluster: bad URL {url!r}")
    return cfg


def load(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply environment overrides, validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is None:
        path = env.get("LIVEROOM_CONFIG") or None
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: {exc}") from None

    sections: dict[str, Any] = {}
    for sname, cls in _SECTIONS.items():
        given = raw.pop(sname, {}) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"[{sname}] must be a table")
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in given.items():
            if key not in types:
                raise ConfigError(f"{sname}.{key}: unknown setting")
            values[key] = _coerce(sname, key, types[key], value)
        sections[sname] = cls(**values)
    if raw:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(raw))}")

    for var, (sname, key) in _ENV.items():
        if var in env:
            cls = _SECTIONS[sname]
            kind = {f.name: f.type for f in fields(cls)}[key]
            sections[sname] = replace(sections[sname], **{key: _coerce(sname, key, kind, env[var])})
    return _check(Config(**sections))
