"""The alert rules in deploy/observability: promtool checks them and runs their unit tests.

Every alert has a unit test in alerts.test.yaml (asserted here too, so a new
alert cannot land untested). promtool comes from Debian's ``prometheus``
package (``make promtool``); the tests skip, saying so, only when it is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parents[2] / "deploy" / "observability"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian's prometheus package: make promtool)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=HERE, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_rules_are_valid() -> None:
    r = _promtool("check", "rules", "alerts.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_every_alert_passes_its_unit_tests() -> None:
    r = _promtool("test", "rules", "alerts.test.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((HERE / "alerts.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((HERE / "alerts.test.yaml").read_text())
    tested = {
        c["alertname"] for t in tests["tests"] for c in t.get("alert_rule_test", []) if c.get("exp_alerts")
    }
    assert alerts == tested, f"untested: {sorted(alerts - tested)}"


def test_dashboard_queries_only_metrics_we_export() -> None:
    board = json.loads((HERE / "dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    # Ours are failover_*; the OpenTelemetry RPC conventions' are rpc_* (rpc.server.duration).
    rpc = ("rpc_server_duration_", "rpc_client_duration_")
    assert exprs and all("failover_" in e or any(r in e for r in rpc) for e in exprs), exprs


def test_dashboard_shows_the_sidecars_stream_ends_and_the_peer_calls() -> None:
    """rpc.client.duration: the sidecars' Sync stream ends by status (a host cycling through dead or
    stale replicas shows as a rate of non-OK ends), and the replicas' calls to their peers."""
    board = json.loads((HERE / "dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    client = [e for e in exprs if "rpc_client_duration_" in e]
    assert any('rpc_service="failover.v1.Sync"' in e and "rpc_grpc_status_code" in e for e in client), client
    assert any("histogram_quantile(0.99" in e and 'rpc_service!="failover.v1.Sync"' in e for e in client), (
        client
    )
    ys = sorted((p["gridPos"]["y"], p["gridPos"]["x"]) for p in board["panels"])
    assert len(ys) == len(set(ys)), "two panels at one place"


def test_dashboard_shows_every_process_collector_pauses() -> None:
    """A gap in the order flow is matched against the sidecar's own collector pauses."""
    board = json.loads((HERE / "dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert any("failover_gc_pause_max_seconds" in e for e in exprs), exprs
    assert any("rate(failover_gc_pause_seconds_total" in e for e in exprs), exprs
