"""The JavaScript client (clients/js) against real hubs: its own Node test suite, run here so
that `make test` fails when the client no longer speaks the hub's protocol.

The Node tests start their own Redis and two `liveroom serve` processes (this Python, so the
hub under test is this checkout's); see clients/js/test/client.test.js.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from liveroom.redis_local import find_server

from .support import FACTOR, ROOT

JS = ROOT / "clients" / "js"


def test_js_client_node_suite() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the JavaScript client's tests need them")
    if not all((JS / "node_modules" / name).is_dir() for name in ("@msgpack/msgpack", "ws", "typescript")):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True, timeout=300 * FACTOR
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    env = dict(os.environ)
    env["LIVEROOM_PYTHON"] = sys.executable
    env["LIVEROOM_REDIS_SERVER"] = find_server()
    run = subprocess.run(
        [node, "--test", "test/"], cwd=JS, env=env, capture_output=True, text=True, timeout=180 * FACTOR
    )
    # node's TAP output names each failing test with its assertion
    assert run.returncode == 0, f"node --test failed:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"
