"""The relay benchmark's framed rows: a tiny real run (venue, sidecar and bare framed relay processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_relay_bench_framed_rows_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    cmd = [sys.executable, "-m", "failover.bench.relay", "--messages", "300", "--warmup", "50"]
    cmd += ["--inflight", "1,8", "--throughput-messages", "300", "--max-seconds", "100", "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=110, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "added by framed over direct" in r.stdout and "added by bare-framed over direct" in r.stdout

    fr = json.loads(out.read_text())["framed"]
    for kind in ("direct", "framed", "bare-framed"):
        s = fr["latency"][kind]
        assert s["count"] == 300 and 0 < s["p50_us"] <= s["p99_us"] <= s["max_us"], (kind, s)
    for kind in ("framed", "bare-framed"):
        a = fr["added_over_direct_us"][kind]
        assert a["p50_us"] == pytest.approx(
            fr["latency"][kind]["p50_us"] - fr["latency"]["direct"]["p50_us"], abs=0.2
        )
    assert sum(b["messages"] for b in fr["blocks"]) == 300
    rows = [(x["path"], x["inflight"]) for x in fr["throughput"]]
    assert rows == [(k, w) for w in (1, 8) for k in ("direct", "framed", "bare-framed")]
    assert all(x["msgs_per_s"] > 0 and x["round_trip"]["count"] == 300 for x in fr["throughput"])
    c = fr["checks"]
    assert c["problems"] == [] and c["venue_duplicates"] == 0
    assert c["sidecar_acked"] == c["sent"]["framed"] == 50 + 300 + 2 * (50 + 300)
    assert c["venue_orders"] == sum(c["sent"].values())
