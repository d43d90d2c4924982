"""The relay benchmark: its small pure parts, and a tiny real run (venue + sidecar processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from failover.bench.relay import Dist, parse_inflight, proc_cpu_s


def test_parse_inflight() -> None:
    assert parse_inflight("1,64") == [1, 64]
    assert parse_inflight(" 8 ") == [8]
    assert parse_inflight("1,1,4") == [1, 4]
    assert parse_inflight(16) == [16]
    for bad in ("", "x", "0", "1,20000"):
        with pytest.raises(typer.BadParameter):
            parse_inflight(bad)


def test_dist_percentiles_and_merge() -> None:
    a, b = Dist("a", keep_samples=True), Dist("b", keep_samples=True)
    for us in range(1, 101):
        a.record_ns(us * 1000)
    b.record_ns(0)  # below 1 us: recorded as 1 us
    s = a.summary()
    assert s["count"] == 100
    assert 49.9 <= s["p50_us"] <= 50.1 and 98.9 <= s["p99_us"] <= 99.1 and s["max_us"] == 100
    assert s["mean_us"] == 50.5
    a.merge(b)
    assert a.count == 101 and a.samples_us[-1] == 1 and a.summary()["min_us"] == 1


def test_proc_cpu_of_self_and_of_a_gone_pid() -> None:
    assert proc_cpu_s(os.getpid()) > 0
    assert proc_cpu_s(2**22 + 12345) == 0.0  # above pid_max: no such process


def _check(s: dict[str, Any], what: str, n: int) -> None:
    assert s["count"] == n, f"{what}: {s}"
    assert 0 < s["p50_us"] <= s["p99_us"] <= s["p99_9_us"] <= s["max_us"], what
    assert "samples_us" not in s or len(s["samples_us"]) == n, what


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_relay_bench_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    cmd = [
        sys.executable,
        "-m",
        "failover.bench.relay",
        "--messages",
        "300",
        "--warmup",
        "50",
        "--inflight",
        "1,8",
        "--throughput-messages",
        "400",
        "--max-seconds",
        "55",
        "--json",
        str(out),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "failover.bench.relay --messages 300 --warmup 50" in r.stdout  # the command, as typed
    assert "added by the sidecar" in r.stdout
    assert "sidecar relay / bare gRPC relay, same blocks" in r.stdout  # the floor, same run

    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["benchmark"] == "relay" and "error" not in doc
    assert doc["machine"]["cpus_usable"] >= 1
    lat = doc["latency"]
    _check(lat["direct"], "direct", 300)
    _check(lat["relay"], "relay", 300)
    _check(lat["bare_grpc"], "bare_grpc", 300)
    assert lat["relay_over_bare_grpc"]["p50_us"] == pytest.approx(
        lat["relay"]["p50_us"] / lat["bare_grpc"]["p50_us"], rel=0.01
    )
    assert lat["added_us"]["p50_us"] == pytest.approx(
        lat["relay"]["p50_us"] - lat["direct"]["p50_us"], abs=0.2
    )
    for stage in ("queue", "venue", "outside"):
        assert doc["relay_split_us"][stage]["count"] == 300, stage
    assert sum(b["messages"] for b in doc["latency_blocks"]) == 300

    rows = doc["throughput"]
    assert [(x["path"], x["inflight"]) for x in rows] == [
        ("direct", 1),
        ("relay", 1),
        ("bare_grpc", 1),
        ("direct", 8),
        ("relay", 8),
        ("bare_grpc", 8),
    ]
    for x in rows:
        assert x["messages"] == 400 and x["msgs_per_s"] > 0 and x["wall_s"] > 0
        assert x["round_trip"]["count"] == 400
        assert x["cpu_s"]["sidecar"] >= 0 and x["cpu_s"]["venue"] >= 0 and x["cpu_s"]["strategy"] >= 0
        if x["path"] == "relay" and x["cpu_s"]["sidecar"] > 0:
            assert x["sidecar_msgs_per_cpu_s"] == pytest.approx(400 / x["cpu_s"]["sidecar"], rel=0.01)

    c = doc["checks"]
    relayed = c["relay_sent"]
    assert relayed == 50 + 300 + 2 * (50 + 400)  # warm-ups, round trips, throughput rows (warm-up + run)
    assert c["sidecar_counters"]["acked"] == relayed
    assert c["bare_grpc_sent"] == relayed  # the same counts through the bare relay
    assert c["venue"]["orders"] == c["direct_sent"] + relayed + c["bare_grpc_sent"]
    assert c["venue"]["duplicates"] == 0
    assert c["relay_outcome_paths"] == {"primary": relayed}
    assert c["sidecar_flips"] == [] and c["problems"] == []
    assert doc["sidecar_at_rest"]["wall_s"] > 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_relay_bench_quick_compare_metrics(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    cmd = [sys.executable, "-m", "failover.bench.relay", "--quick", "--compare-metrics", "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=100, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "metrics overhead" in r.stdout and "machine load while measuring" in r.stdout

    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["params"]["compare_metrics"] is True
    assert doc["params"]["messages"] == 300 and doc["params"]["throughput_messages"] == 400
    lat = doc["latency"]
    for kind in ("direct", "relay", "bare_grpc", "relay_metrics"):
        _check(lat[kind], kind, 300)
    over = doc["metrics_overhead"]["relay round trip"]
    assert over["count_off"] == over["count_on"] == 300
    assert over["p50_ratio"] == pytest.approx(over["p50_on_us"] / over["p50_off_us"], abs=0.001)
    # The ratios' spread: a paired bootstrap (sample i of each from the same block).
    for p in (50, 99):
        sp = over[f"p{p}_ratio_spread"]
        assert sp["paired"] is True and sp["lo"] <= sp["median"] <= sp["hi"], sp
    assert over["p99_verdict"] in (
        "within",
        "over",
        "unresolved",
        "too few runs",
    ) and "paired bootstrap" in " ".join(r.stdout.split())
    # Every block ran every kind, and each kind went first at least once.
    assert {b["order"][0] for b in doc["latency_blocks"]} == {"direct", "relay", "bare_grpc", "relay_metrics"}
    assert [(x["path"], x["inflight"]) for x in doc["throughput"]] == [
        ("direct", 1),
        ("relay", 1),
        ("bare_grpc", 1),
        ("relay_metrics", 1),
    ]
    c = doc["checks"]
    assert c["relay_metrics_sent"] == 50 + 300 + 50 + 400
    assert c["metrics_sidecar_counters"]["acked"] == c["relay_metrics_sent"]
    sent = c["direct_sent"] + c["relay_sent"] + c["relay_metrics_sent"] + c["bare_grpc_sent"]
    assert c["venue"]["orders"] == sent
    assert doc["scraped"]["orders_acked"] == c["relay_metrics_sent"]
    assert c["problems"] == []
