"""The operations files in deploy/ against a real hub: a dashboard that names a metric the
hub does not export shows an empty panel exactly when an operator needs it."""

from __future__ import annotations

import json
import re
import urllib.request

from .support import ROOT, HubProcess

DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported_families(text: str) -> set[str]:
    """Metric family names in a Prometheus exposition, from its `# TYPE` lines (a labelled
    counter nobody has incremented yet has a TYPE line and no sample)."""
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) \S+$", text, re.M)}


def family(name: str, families: set[str]) -> bool:
    if name in families:
        return True
    return any(name.endswith(s) and name[: -len(s)] in families for s in SUFFIXES)


def test_grafana_dashboard_uses_only_exported_metrics(shared_hub: HubProcess) -> None:
    with urllib.request.urlopen(shared_hub.base + "/metrics", timeout=5) as r:
        families = exported_families(r.read().decode())
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b((?:liveroom|process)_[a-z_]+)\b", e)}
    assert {"liveroom_deliveries_total", "liveroom_connections", "liveroom_op_seconds_bucket"} <= names
    missing = sorted(n for n in names if not family(n, families))
    assert not missing, f"the dashboard graphs metrics the hub does not export: {missing}"
    # every panel has a place of its own on the grid
    spots = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dash["panels"]]
    assert len(spots) == len(set(spots))
