"""`liveroom serve`, `liveroom token` and `liveroom webhooks` (order webhooks only, liveroom/webhooks.py).

serve: with no Redis configured, starts a local one (redis_local.py) for the life of the
command. `--workers N` (or `auto`) runs N hub processes on one port with SO_REUSEPORT, so a
machine's cores are all used; each worker is a full hub and they meet in Redis. The
supervisor restarts a worker that dies (with backoff) and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

from liveroom import config as config_mod
from liveroom import logs
from liveroom.auth import make_token
from liveroom.config import Config
from liveroom.safety import UnsafeExposure, check_dev_tokens, check_exposure, is_loopback

log = logging.getLogger("liveroom")


async def _serve(cfg: Config, reuse_port: bool) -> None:
    from aiohttp import web

    from liveroom.web.app import build_app, build_internal_app

    raise_fd_limit()
    app = build_app(cfg)
    # keepalive_timeout also bounds a new socket's wait for its first request: a client
    # dribbling its headers a byte at a time is closed after header_timeout_s
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=cfg.server.drain_timeout_s,
        access_log=None,
        keepalive_timeout=cfg.limits.header_timeout_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, cfg.server.host, cfg.server.port, reuse_port=reuse_port or None, backlog=4096)
    await site.start()
    log.info("listening on http://%s:%d (pid %d)", cfg.server.host, cfg.server.port, os.getpid())
    internal = None
    if cfg.server.internal_port:
        internal = web.AppRunner(build_internal_app(app), handle_signals=False, access_log=None)
        await internal.setup()
        await web.TCPSite(internal, cfg.server.internal_host, cfg.server.internal_port, reuse_port=reuse_port or None).start()
        log.info("/metrics and /readyz on http://%s:%d", cfg.server.internal_host, cfg.server.internal_port)
    capper = asyncio.create_task(_cap_pending(runner, cfg.limits.max_pending))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining connections")
    capper.cancel()
    if internal is not None:
        await internal.cleanup()
    await runner.cleanup()


def raise_fd_limit() -> None:
    """Open files up to the hard limit: every viewer is a descriptor (max_connections is
    then kept under what is left, web/ws.py)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)


async def _cap_pending(runner: Any, cap: int) -> None:
    """Sockets that have not upgraded or are idle between requests hold a descriptor each
    and count against no viewer limit: over `cap`, the oldest are closed (slowloris)."""
    while True:
        await asyncio.sleep(0.5)
        server = runner.server
        if server is None:
            continue
        conns = server.connections
        for handler in conns[: max(0, len(conns) - cap)]:
            handler.force_close()


def _run_worker(cfg: Config, reuse_port: bool) -> None:
    import uvloop

    uvloop.run(_serve(cfg, reuse_port))


def _workers(n: str | int) -> int:
    if n == "auto":
        return os.cpu_count() or 1
    try:
        v = int(n)
    except ValueError:
        raise argparse.ArgumentTypeError("a number or 'auto'") from None
    if v < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return v


def _insecure_dev(args: argparse.Namespace) -> bool:
    """The explicit development switch: --insecure-dev or LIVEROOM_INSECURE_DEV=1."""
    env = os.environ.get("LIVEROOM_INSECURE_DEV", "").strip().lower()
    return bool(getattr(args, "insecure_dev", False)) or env in ("1", "true", "yes", "on")


def _exposure_ok(cfg: Config, insecure_dev: bool) -> bool:
    """check_exposure, reported on stderr; False: the caller exits 2 before starting anything."""
    try:
        check_exposure(cfg.server.host, cfg.auth.secrets, insecure_dev)
        check_dev_tokens(cfg.server.host, cfg.auth.dev_tokens, insecure_dev)
    except UnsafeExposure as exc:
        print(f"liveroom: {exc}", file=sys.stderr)
        return False
    if insecure_dev and not is_loopback(cfg.server.host):
        log.warning("--insecure-dev: listening on %s without checking the token secrets", cfg.server.host)
    return True


def load_config(path: str | None) -> Config:
    """The config, or exit 2 with what is wrong with it (every command reads it so)."""
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        print(f"liveroom: config: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.host:
        cfg = replace(cfg, server=replace(cfg.server, host=args.host))
    if args.port is not None:
        cfg = replace(cfg, server=replace(cfg.server, port=args.port))
    insecure_dev = _insecure_dev(args)
    if not _exposure_ok(cfg, insecure_dev):  # before the local Redis, workers, anything
        return 2
    workers = args.workers if args.workers is not None else (cfg.server.workers or os.cpu_count() or 1)

    local = None
    if not cfg.redis.urls and not cfg.redis.cluster:
        from liveroom.redis_local import RedisProcess, find_server

        binary = find_server()
        local = RedisProcess(binary).start()
        log.info("no Redis configured: started %s on %s (stopped on exit)", binary, local.url)
        cfg = replace(cfg, redis=replace(cfg.redis, urls=(local.url,)))
    try:
        if workers == 1:
            _run_worker(cfg, reuse_port=False)
            return 0
        return _supervise(cfg, workers, args.config, insecure_dev)
    finally:
        if local is not None:
            local.stop()
            log.info("stopped the local Redis")


def _supervise(cfg: Config, workers: int, config_path: str | None, insecure_dev: bool = False) -> int:
    """Start `workers` hub processes on one port and stop them together."""
    env = dict(os.environ)
    if insecure_dev:
        env["LIVEROOM_INSECURE_DEV"] = "1"  # each worker checks again
    env["LIVEROOM_REDIS"] = ",".join(cfg.redis.urls)
    if cfg.redis.cluster:
        env["LIVEROOM_REDIS_CLUSTER"] = ",".join(cfg.redis.cluster)
    env["LIVEROOM_HOST"] = cfg.server.host
    env["LIVEROOM_PORT"] = str(cfg.server.port)
    metrics_dir = None
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # one scrape of the shared port reports every worker (liveroom/metrics.py)
        metrics_dir = tempfile.mkdtemp(prefix="liveroom-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    cmd = [sys.executable, "-m", "liveroom", "serve", "--workers", "1", "--reuse-port"]
    if config_path:
        cmd += ["--config", config_path]
    try:
        return _run_workers(cmd, env, workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


# a worker that dies is restarted after a delay that doubles while it keeps dying young
# (a crash loop costs a restart every 30 s, not a core), and starts over at 0.5 s once a
# worker has lived a minute
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
RESTART_RESET_AFTER_S = 60.0
EXIT_CONFIG = 2  # a worker refusing its configuration: restarting it cannot help


def restart_delay(previous_s: float, lived_s: float) -> float:
    """How long to wait before restarting a worker that lived `lived_s` and whose previous
    restart (in the same slot) waited `previous_s` (0: none yet)."""
    if previous_s <= 0 or lived_s >= RESTART_RESET_AFTER_S:
        return RESTART_FIRST_S
    return min(previous_s * 2, RESTART_MAX_S)


@dataclass
class _Worker:
    """One worker slot: the process in it now and when it may be restarted."""

    proc: subprocess.Popen[bytes]
    started: float
    delay_s: float = 0.0  # the delay of this slot's last restart
    restart_at: float | None = None  # set while the slot waits to be restarted


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _run_workers(cmd: list[str], env: dict[str, str], workers: int) -> int:
    """Run `workers` copies of `cmd`; restart one that exits without being asked (logged,
    with backoff); on SIGTERM or SIGINT forward the signal to every worker, restart none,
    and return once all have exited (their worst exit code)."""
    metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR")

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, env=env)

    slots = [_Worker(spawn(), time.monotonic()) for _ in range(workers)]
    log.info("started %d workers: %s", workers, " ".join(str(w.proc.pid) for w in slots))
    stopping: list[int] = []  # the signal that asked us to stop

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for w in slots:
            if w.proc.poll() is None:
                w.proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def forget(w: _Worker) -> None:
        """A dead worker's live gauges (connections, viewers) leave the shared scrape."""
        if metrics_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(w.proc.pid, metrics_dir)

    fatal = 0
    while not stopping and not fatal:
        now = time.monotonic()
        for w in slots:
            if stopping:
                break
            if w.restart_at is not None:
                if now >= w.restart_at:
                    w.proc, w.started, w.restart_at = spawn(), now, None
                    log.info("restarted a worker: pid %d", w.proc.pid)
                continue
            code = w.proc.poll()
            if code is None:
                continue
            forget(w)
            lived = now - w.started
            if code == EXIT_CONFIG:
                log.error("worker %d exited refusing its configuration (%s): stopping", w.proc.pid, _exit_text(code))
                fatal = code
                break
            w.delay_s = restart_delay(w.delay_s, lived)
            w.restart_at = now + w.delay_s
            log.warning(
                "worker %d died (%s) after %.1f s: restarting it in %.1f s", w.proc.pid, _exit_text(code), lived, w.delay_s
            )
        time.sleep(0.1)  # signals interrupt it: forward() runs at once

    # again: a worker spawned while the signal was being handled has not had it
    sig = stopping[0] if stopping else signal.SIGTERM
    for w in slots:
        if w.restart_at is None and w.proc.poll() is None:
            w.proc.send_signal(sig)
    code = 0
    for w in slots:
        if w.restart_at is not None:
            continue  # it died before the stop, and was reaped then
        rc = w.proc.wait()
        forget(w)
        if rc == -sig:
            rc = 0  # ended by the signal we forwarded (e.g. before it installed its handler)
        code = code or rc
    if stopping:
        log.info("stopped on %s: all workers exited", signal.Signals(stopping[0]).name)
    return fatal or code


def token(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    secret = args.secret or (cfg.auth.secrets[0] if cfg.auth.secrets else "")
    if not secret:
        print("liveroom: no secret: pass --secret or configure auth.secrets", file=sys.stderr)
        return 2
    rooms = args.rooms.split(",") if args.rooms else None
    print(make_token(secret, args.sub, name=args.name, role=args.role, rooms=rooms, ttl_s=args.ttl))
    return 0


def webhooks(args: argparse.Namespace) -> int:
    """Deliver order webhooks without serving viewers (docs/shop.md); until SIGTERM/SIGINT."""
    from liveroom import webhooks as hooks_mod

    cfg = load_config(args.config)
    if not cfg.webhooks.url:
        print("liveroom: webhooks: no webhooks.url (or LIVEROOM_WEBHOOK_URL) configured", file=sys.stderr)
        return 2
    if not cfg.redis.cluster and not cfg.redis.urls:
        print("liveroom: webhooks: needs the hubs' Redis: redis.urls or redis.cluster", file=sys.stderr)
        return 2

    async def run() -> None:
        hooks = hooks_mod.for_config(cfg, hooks_mod.consumer_name())
        hooks.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await hooks.stop()

    asyncio.run(run())
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LIVEROOM_LOG", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    logs.install()
    p = argparse.ArgumentParser(prog="liveroom")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run a hub")
    s.add_argument("--config", help="path of config.toml (default: $LIVEROOM_CONFIG, else built-in defaults)")
    s.add_argument("--workers", type=_workers, help="hub processes sharing the port, or 'auto' (one per core)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    s.add_argument(
        "--insecure-dev",
        action="store_true",
        help="development on a trusted network only: listen on a non-loopback address even with "
        "a secret published in the repository or shorter than 32 bytes (also LIVEROOM_INSECURE_DEV=1)",
    )
    t = sub.add_parser("token", help="print a signed token (development and load tests)")
    t.add_argument("--config")
    t.add_argument("--secret")
    t.add_argument("--sub", required=True)
    t.add_argument("--name")
    t.add_argument("--role", default="viewer", choices=["viewer", "host", "shop", "admin"])
    t.add_argument("--rooms", help="comma-separated room ids")
    t.add_argument("--ttl", type=int, default=24 * 3600)
    w = sub.add_parser("webhooks", help="deliver order webhooks only (no viewers): docs/shop.md")
    w.add_argument("--config", help="path of config.toml (default: $LIVEROOM_CONFIG)")
    args = p.parse_args(argv)
    if args.cmd == "webhooks":
        return webhooks(args)
    if args.cmd == "serve":
        if args.reuse_port:
            cfg = load_config(args.config)
            if not _exposure_ok(cfg, _insecure_dev(args)):
                return 2
            _run_worker(cfg, reuse_port=True)
            return 0
        return serve(args)
    return token(args)


if __name__ == "__main__":
    sys.exit(main())
