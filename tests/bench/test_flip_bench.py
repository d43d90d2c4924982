"""``failover bench flip --quick``, also with ``--compare-metrics``: the command keeps working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_flip_bench_quick_compare_metrics(tmp_path: Path) -> None:
    out = tmp_path / "flip.json"
    cmd = [sys.executable, "-m", "failover.bench.flip", "--quick", "--compare-metrics", "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=100, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "metrics overhead" in r.stdout and "machine load while measuring" in r.stdout

    doc = json.loads(out.read_text())
    assert doc["ok"] is True and "error" not in doc
    assert doc["params"] == {"heartbeat_ms": [5], "runs": 3, "compare_metrics": True}
    assert sorted(doc["results"]) == [
        f"{kind}/5ms/metrics-{m}" for kind in ("hard", "silent") for m in ("off", "on")
    ]
    for row in doc["results"].values():
        assert row["flip"]["count"] == 3 and row["first_ack"]["count"] == 3
    over = doc["metrics_overhead"]
    assert set(over) == {f"{k}/5ms {m}" for k in ("hard", "silent") for m in ("flip", "first ack")}
    for v in over.values():
        assert v["count_off"] == v["count_on"] == 3 and v["p50_ratio"] > 0 and v["p99_ratio"] > 0
        # Each ratio with its paired bootstrap spread, and a verdict on it.
        for p in (50, 99):
            sp = v[f"p{p}_ratio_spread"]
            assert sp["paired"] is True and sp["lo"] <= sp["median"] <= sp["hi"], sp
        # 3 runs: no sample beyond p99, so the p99 spread means nothing and says so.
        assert v["p99_verdict"] == "too few runs"
    assert "paired bootstrap" in " ".join(r.stdout.split()) and "verdict" in r.stdout
    # The runs with metrics were exported: warm-up + 3 runs per fault kind, each one flip there and
    # one back (two decisions; flips are counted only while metrics are on).
    assert doc["scraped"]["5ms"]["flips_counted"] >= 2 * 4
    assert doc["machine_load"]["wall_s"] > 0
    cost = doc["instrument_cost_us"]
    assert cost["queued"]["count"] == cost["sdk"]["count"] == 2000
    assert "one flip's measurements" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_flip_bench_one_fault_kind(tmp_path: Path) -> None:
    """``--fault hard`` runs the hard rows only (a cheaper run of many samples); a bad kind is exit 2."""
    out = tmp_path / "flip.json"
    base = [sys.executable, "-m", "failover.bench.flip", "--runs", "2", "--heartbeat-ms", "5"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
    cmd = [*base, "--fault", "hard", "--compare-metrics", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=100, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    doc = json.loads(out.read_text())
    assert doc["params"]["fault"] == ["hard"]
    assert sorted(doc["results"]) == ["hard/5ms/metrics-off", "hard/5ms/metrics-on"]
    assert set(doc["metrics_overhead"]) == {"hard/5ms flip", "hard/5ms first ack"}

    r = subprocess.run(
        [*base, "--fault", "loud"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --fault: 'loud' is not one of hard, silent", r.stderr
