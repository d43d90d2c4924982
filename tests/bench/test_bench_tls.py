"""``--tls both`` on fanout and apply-latency: tiny runs, both variants and their ratio in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failover.bench.cli import bench_app
from failover.bench.tls_variant import BenchPki, ratio, variants


def test_variants_and_ratio() -> None:
    assert variants("off") == [False] and variants("on") == [True] and variants("both") == [False, True]
    assert ratio(3.0, 2.0) == 1.5 and ratio(None, 2.0) is None and ratio(1.0, 0.0) is None


def test_bench_pki_issues_on_demand_and_removes() -> None:
    pki = BenchPki()
    try:
        sec = pki.section("sidecar", "bench-00001")
        assert Path(sec.cert_file).exists() and Path(sec.key_file).stat().st_mode & 0o077 == 0
        assert pki.config("replica", "c1")["mode"] == "mtls"
    finally:
        pki.remove()
    assert not pki.root.exists()


def test_bad_tls_value_is_a_usage_error() -> None:
    r = CliRunner().invoke(bench_app, ["fanout", "--tls", "maybe"])
    assert r.exit_code == 2


def _check_pairs(doc: dict, key: str) -> None:
    assert doc["ok"] is True, doc.get("error")
    assert [x["tls"] for x in doc["results"]] == ["insecure", "mtls"]
    (pair,) = doc["tls_comparison"]
    for variant in ("insecure", "mtls"):
        assert pair[variant][f"{key}_p50_ms"] > 0
        assert pair[variant][f"{key}_p50_ms"] <= pair[variant][f"{key}_max_ms"]
    # A smoke run of two samples: the ratio exists (rounded to 2 places, a stalled run can make it 0.0).
    assert pair["ratio"][f"{key}_p50_ms"] >= 0
    assert doc["machine_load"]["wall_s"] > 0


@pytest.mark.slow
@pytest.mark.cluster
def test_fanout_tls_both(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    r = CliRunner().invoke(
        bench_app,
        ["fanout", "--streams", "3", "--replicas", "1", "--runs", "2", "--tls", "both", "--json", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "--tls both" in r.output and "TLS cost" in r.output
    doc = json.loads(out.read_text())
    _check_pairs(doc, "last_stream")
    assert all(x["connections"] == 3 for x in doc["results"])  # one connection per stream, both ways
    assert "coordinator_cpu_us_per_stream_per_push" in doc["tls_comparison"][0]["mtls"]


@pytest.mark.slow
@pytest.mark.cluster
def test_apply_latency_tls_both(tmp_path: Path) -> None:
    out = tmp_path / "apply.json"
    r = CliRunner().invoke(
        bench_app, ["apply-latency", "--sidecars", "1", "--runs", "2", "--tls", "both", "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "TLS cost" in r.output
    doc = json.loads(out.read_text())
    _check_pairs(doc, "last_sidecar")
    assert doc["results"][1]["cpu_ms_per_run"].keys() == {"coordinators", "sidecars"}
