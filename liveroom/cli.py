"""`liveroom serve` and `liveroom token`.

serve: with no Redis configured, starts a local one (redis_local.py) for the life of the
command. `--workers N` (or `auto`) runs N hub processes on one port with SO_REUSEPORT, so a
machine's cores are all used; each worker is a full hub and they meet in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace

from liveroom import config as config_mod
from liveroom.auth import make_token
from liveroom.config import Config

log = logging.getLogger("liveroom")


async def _serve(cfg: Config, reuse_port: bool) -> None:
    from aiohttp import web

    from liveroom.web.app import build_app

    app = build_app(cfg)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=cfg.server.drain_timeout_s, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.server.host, cfg.server.port, reuse_port=reuse_port or None, backlog=4096)
    await site.start()
    log.info("listening on http://%s:%d (pid %d)", cfg.server.host, cfg.server.port, os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining connections")
    await runner.cleanup()


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


def serve(args: argparse.Namespace) -> int:
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"liveroom: config: {exc}", file=sys.stderr)
        return 2
    if args.host:
        cfg = replace(cfg, server=replace(cfg.server, host=args.host))
    if args.port is not None:
        cfg = replace(cfg, server=replace(cfg.server, port=args.port))
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
        return _supervise(cfg, workers, args.config)
    finally:
        if local is not None:
            local.stop()
            log.info("stopped the local Redis")


def _supervise(cfg: Config, workers: int, config_path: str | None) -> int:
    """Start `workers` hub processes on one port and stop them together."""
    env = dict(os.environ)
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


def _run_workers(cmd: list[str], env: dict[str, str], workers: int) -> int:
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
    log.info("started %d workers: %s", workers, " ".join(str(p.pid) for p in procs))

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    for p in procs:
        code = p.wait() or code
    return code


def token(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    secret = args.secret or (cfg.auth.secrets[0] if cfg.auth.secrets else "")
    if not secret:
        print("liveroom: no secret: pass --secret or configure auth.secrets", file=sys.stderr)
        return 2
    rooms = args.rooms.split(",") if args.rooms else None
    print(make_token(secret, args.sub, name=args.name, role=args.role, rooms=rooms, ttl_s=args.ttl))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LIVEROOM_LOG", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    p = argparse.ArgumentParser(prog="liveroom")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run a hub")
    s.add_argument("--config", help="path of config.toml (default: $LIVEROOM_CONFIG, else built-in defaults)")
    s.add_argument("--workers", type=_workers, help="hub processes sharing the port, or 'auto' (one per core)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    t = sub.add_parser("token", help="print a signed token (development and load tests)")
    t.add_argument("--config")
    t.add_argument("--secret")
    t.add_argument("--sub", required=True)
    t.add_argument("--name")
    t.add_argument("--role", default="viewer", choices=["viewer", "host", "admin"])
    t.add_argument("--rooms", help="comma-separated room ids")
    t.add_argument("--ttl", type=int, default=24 * 3600)
    args = p.parse_args(argv)
    if args.cmd == "serve":
        if args.reuse_port:
            cfg = config_mod.load(args.config)
            _run_worker(cfg, reuse_port=True)
            return 0
        return serve(args)
    return token(args)


if __name__ == "__main__":
    sys.exit(main())
