"""`liveroom serve` with the shipped config.toml: refused on a public address (exit 2, before
anything starts), served on loopback, and served anywhere with the development switch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from liveroom.redis_local import RedisProcess, free_port
from tests.support import ROOT, t

CONFIG = str(ROOT / "config.toml")


def _env(host: str, port: int, **extra: str) -> dict[str, str]:
    """The caller's environment minus every LIVEROOM_ setting (so config.toml's secret is
    the one in force), plus where to listen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEROOM_")}
    env.update({"LIVEROOM_HOST": host, "LIVEROOM_PORT": str(port), "LIVEROOM_LOG": "INFO", **extra})
    return env


def _serve(env: dict[str, str], *flags: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "liveroom", "serve", "--config", CONFIG, *flags],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def _healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + t(20)
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"hub exited {proc.returncode}:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"hub did not become healthy:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(t(15))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_shipped_config_refused_on_a_public_address(tmp_path: Path) -> None:
    """0.0.0.0 with config.toml's published secret: exit 2 at once, naming LIVEROOM_SECRETS,
    with no Redis started and nothing listening."""
    port = free_port()
    log = tmp_path / "hub.log"
    proc = _serve(_env("0.0.0.0", port), log=log)
    try:
        code = proc.wait(t(15))
    except subprocess.TimeoutExpired:
        _stop(proc)
        pytest.fail(f"the hub started on 0.0.0.0 with the repository's secret:\n{log.read_text()}")
    text = log.read_text()
    assert code == 2, text
    assert "LIVEROOM_SECRETS" in text and "--insecure-dev" in text, text
    assert "dev-only-secret" not in text  # the secret is never echoed
    assert "Redis" not in text.split("LIVEROOM_SECRETS")[0]  # nothing started first
    assert "Traceback" not in text
    # a short secret of one's own is refused the same way
    proc = _serve(_env("0.0.0.0", port, LIVEROOM_SECRETS="hunter2hunter2"), log=log)
    assert proc.wait(t(15)) == 2
    assert "shorter than 32 bytes" in log.read_text()


@pytest.mark.parametrize(
    "host, flags, extra",
    [
        ("127.0.0.1", (), {}),  # what `make serve` does
        ("0.0.0.0", ("--insecure-dev",), {}),
        ("0.0.0.0", (), {"LIVEROOM_INSECURE_DEV": "1"}),
    ],
)
def test_shipped_config_serves_on_loopback_or_with_the_switch(
    tmp_path: Path, redis1: RedisProcess, host: str, flags: tuple[str, ...], extra: dict[str, str]
) -> None:
    port = free_port()
    log = tmp_path / "hub.log"
    proc = _serve(_env(host, port, LIVEROOM_REDIS=redis1.url, **extra), *flags, log=log)
    try:
        _healthy(proc, port, log)
        if host != "127.0.0.1":
            assert "--insecure-dev" in log.read_text()  # the warning says what is on
    finally:
        _stop(proc)
    assert "Traceback" not in log.read_text()
