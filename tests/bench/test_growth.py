"""``failover bench growth``: the fit, the failure categories, a curve with points not reached
(fake points, no cluster), and tiny real runs of both kinds (fan-out streams, sidecar hosts)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from failover.bench.cli import bench_app
from failover.bench.growth import command as growth_command
from failover.bench.growth.fit import classify, fit_line
from failover.bench.growth.points import Point, Runner
from failover.bench.report import BenchFailure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_fit_line_least_squares() -> None:
    f = fit_line([10, 100, 1000], [1.0 + 0.05 * 10, 1.0 + 0.05 * 100, 1.0 + 0.05 * 1000])
    assert f is not None
    assert f.slope == pytest.approx(0.05) and f.intercept == pytest.approx(1.0)
    assert f.r2 == pytest.approx(1.0) and f.points == 3
    noisy = fit_line([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    assert noisy is not None and noisy.slope == pytest.approx(0.8) and noisy.r2 == pytest.approx(0.64)
    assert fit_line([5], [1.0]) is None  # one point: no line
    assert fit_line([5, 5], [1.0, 2.0]) is None  # no spread in x
    flat = fit_line([1, 2], [3.0, 3.0])
    assert flat is not None and flat.slope == 0 and flat.r2 is None


def test_classify_failure_reasons() -> None:
    assert classify("stream 7 to 127.0.0.1:1 failed while opening: RESOURCE_EXHAUSTED: shed") == (
        "streams refused by shedding"
    )
    assert classify("did not finish within 300s") == "timeout"
    assert classify("Switch via leader c1: FAILED_PRECONDITION: not the leader") == "replica lost its lease"
    assert classify("coordinator c2 exited unexpectedly (code -9); its log ends with:") == "a process exited"
    assert classify("only 10/5000 streams got their snapshot within 250s") == "streams not ready"
    assert classify("did not finish within the point's time: --max-seconds reached before run 3") == "timeout"
    assert classify("something else") == "other"


def _fake_runner(**_kw: Any) -> Runner:
    """S=10, 100: figures on a line; S=1000: shed; S=5000: hangs (the point timeout ends it)."""

    async def run(p: Point, deadline: float) -> dict[str, Any]:
        if p.size == 1000:
            raise BenchFailure("stream 3 to 127.0.0.1:1 failed while opening: RESOURCE_EXHAUSTED: x\nmore")
        if p.size == 5000:
            await asyncio.sleep(3600)
        p50 = 1.0 + 0.05 * p.size * p.replicas
        return {
            "last_stream": {"count": 2, "p50_ms": p50, "p99_ms": p50 * 2, "max_ms": p50 * 2},
            "replica_cpu_us_per_decision": 40.0 * p.size,
            "replica_cpu_us_per_stream_per_decision": 40.0,
        }

    return run


def test_points_not_reached_are_reported_and_the_curve_still_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(growth_command, "fanout_runner", _fake_runner)
    js, png = tmp_path / "g.json", tmp_path / "g.png"
    args = ["growth", "--streams", "10,100,1000,5000", "--replicas", "1,3", "--runs", "2"]
    r = CliRunner().invoke(bench_app, [*args, "--point-timeout", "1", "--json", str(js), "--png", str(png)])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    assert "not reached (streams refused by shedding)" in r.output
    assert "not reached (timeout)" in r.output
    assert "slope R=1 (2 point(s), streams 10..100):" in r.output
    assert "+50.00 ms per 1,000 streams" in r.output  # R=1: 0.05 ms per stream
    assert "+150.00 ms per 1,000 streams" in r.output  # R=3
    doc = json.loads(js.read_text())
    assert doc["benchmark"] == "growth" and doc["ok"] is True
    by = {(p["streams"], p["replicas"]): p for p in doc["points"]}
    assert len(by) == 8
    assert by[(1000, 3)]["reached"] is False and by[(1000, 3)]["category"] == "streams refused by shedding"
    assert by[(5000, 1)]["reached"] is False and by[(5000, 1)]["category"] == "timeout"
    assert by[(5000, 1)]["elapsed_s"] < 10
    assert doc["fits"]["R=1"]["time_p50"]["slope"] == pytest.approx(50.0)
    assert doc["fits"]["R=1"]["cpu"]["slope"] == pytest.approx(40.0)
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_png_without_matplotlib_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = CliRunner().invoke(bench_app, ["growth", "--streams", "5", "--png", str(tmp_path / "x.png")])
    assert r.exit_code == 2
    assert "--png needs matplotlib" in r.output and "Traceback" not in r.output


def test_bad_host_list_is_rejected() -> None:
    r = CliRunner().invoke(bench_app, ["growth", "--kind", "hosts", "--hosts", "1,0"])
    assert r.exit_code == 2


def _check(s: dict[str, Any], n: int) -> None:
    assert s["count"] == n
    assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]


@pytest.mark.slow
@pytest.mark.cluster
def test_growth_fanout_smoke(tmp_path: Path) -> None:
    js, png = tmp_path / "g.json", tmp_path / "g.png"
    args = ["growth", "--streams", "5,10", "--replicas", "1", "--runs", "2"]
    r = CliRunner().invoke(bench_app, [*args, "--json", str(js), "--png", str(png)])
    assert r.exit_code == 0, r.output
    assert "ms per 1,000 streams" in r.output and "µs replica CPU per stream per decision" in r.output
    doc = json.loads(js.read_text())
    assert doc["ok"] is True and doc["kind"] == "fanout"
    assert [(p["streams"], p["replicas"], p["reached"]) for p in doc["points"]] == [
        (5, 1, True),
        (10, 1, True),
    ]
    for p in doc["points"]:
        _check(p["last_stream"], 2)
        assert p["replica_cpu_us_per_stream_per_decision"] >= 0
        assert p["machine_load"]["wall_s"] > 0
    fit = doc["fits"]["R=1"]
    assert fit["time_p50"]["fit"]["points"] == 2 and isinstance(fit["time_p50"]["slope"], float)
    assert fit["cpu"]["slope_unit"] == "µs replica CPU per stream per decision"
    assert png.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow
@pytest.mark.cluster
def test_growth_hosts_smoke(tmp_path: Path) -> None:
    js, png = tmp_path / "h.json", tmp_path / "h.png"
    args = ["growth", "--kind", "hosts", "--hosts", "1,2", "--runs", "2"]
    r = CliRunner().invoke(bench_app, [*args, "--json", str(js), "--png", str(png)])
    assert r.exit_code == 0, r.output
    assert "ms per host" in r.output
    doc = json.loads(js.read_text())
    assert doc["ok"] is True and doc["kind"] == "hosts"
    assert [(p["hosts"], p["reached"]) for p in doc["points"]] == [(1, True), (2, True)]
    for p in doc["points"]:
        _check(p["last_applied"], 2)
        assert p["coordinator_cpu_us_per_host_per_decision"] >= 0
        assert p["sidecar_cpu_us_per_host_per_decision"] >= 0
    assert doc["fits"]["3 replicas"]["time_p50"]["fit"]["points"] == 2
    assert png.read_bytes().startswith(PNG_SIGNATURE)
