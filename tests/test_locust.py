"""bench/locustfile.py against a real hub: a short headless run must time comments end to end
without a single failure (fails when the locustfile and the protocol drift apart)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest

from liveroom.redis_local import RedisProcess
from tests.support import ROOT, SECRET, HubProcess, t

pytest.importorskip("locust")
pytest.importorskip("websocket")


def read_stats(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_locustfile_headless_run(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess, tmp_path: Path
) -> None:
    hub = start_hub(
        LIVEROOM_REDIS=redis1.url,
        LIVEROOM_COMMENT_RATE="0",
        LIVEROOM_FRAME_RATE="0",
    )
    env = dict(os.environ)
    env.update(
        {
            "LIVEROOM_SECRETS": SECRET,
            "LIVEROOM_ROOM": "locust-" + uuid.uuid4().hex[:8],
            "LIVEROOM_MILESTONE": "50",  # the host sets a likes milestone: milestone_set must succeed
            "LIVEROOM_DRAWS": "1",  # and starts a 2 s join draw that the DrawerUsers enter
            "LIVEROOM_DRAW_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("LIVEROOM_SALE", None)
    env.pop("LIVEROOM_OPEN_SALE", None)
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(ROOT / "bench" / "locustfile.py"),
        "--headless", "-u", "20", "-r", "20", "-t", "6s",
        "--host", hub.base,
        "--csv", str(tmp_path / "run"),
        "--only-summary",
        "--stop-timeout", "2",
        "ViewerUser", "CommenterUser", "HostUser", "DrawerUser",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=t(60))
    output = proc.stdout[-4000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, f"locust exited {proc.returncode} (0 = no failures):\n{output}"

    stats = read_stats(tmp_path / "run_stats.csv")
    assert "comment" in stats, f"no comment requests:\n{output}"
    comment = stats["comment"]
    assert comment["Type"] == "WS"
    assert int(comment["Request Count"]) > 0
    assert int(comment["Failure Count"]) == 0, output
    for name in ("comment_delivery", "comment_seen", "connect", "notice", "milestone_set", "draw_start", "join_draw", "draw_result_delay"):
        assert name in stats, f"no {name} entries:\n{output}"
        assert int(stats[name]["Request Count"]) > 0
        assert int(stats[name]["Failure Count"]) == 0, output
    # every connection is a user: 20 of them, none refused
    assert int(stats["connect"]["Request Count"]) == 20
    # on loopback a comment comes back within a few ticks
    assert float(stats["comment_delivery"]["Median Response Time"]) < 1000
    assert int(stats["Aggregated"]["Failure Count"]) == 0
    assert not (tmp_path / "run_failures.csv").read_text().strip().splitlines()[1:], output
