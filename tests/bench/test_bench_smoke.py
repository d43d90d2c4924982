"""Smoke tests of ``failover bench``: tiny runs on a real loopback cluster, JSON checked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from failover.bench.cli import bench_app
from failover.bench.common import Stats


def _check_stats(s: dict[str, Any], what: str, min_count: int) -> None:
    assert s["count"] >= min_count, f"{what}: {s}"
    for k in ("p50_ms", "p99_ms", "max_ms"):
        assert s[k] > 0, f"{what}.{k} = {s[k]}"
    assert s["p50_ms"] <= s["p99_ms"] <= s["max_ms"], what
    assert len(s["samples_us"]) == s["count"], what


def test_stats_percentiles_from_hdrhistogram() -> None:
    s = Stats("x", "test")
    for ms in range(1, 101):
        s.record_ns(ms * 1_000_000)
    s.record_ns(-5_000)  # a sample before its reference: kept signed, clamped in the histogram
    sm = s.summary()
    assert sm["count"] == 101
    assert 49.9 <= sm["p50_ms"] <= 50.1
    assert 98.9 <= sm["p99_ms"] <= 99.1
    assert 99.9 <= sm["max_ms"] <= 100.1
    assert s.clamped == 1 and s.samples_us[-1] == -5


def test_bad_stream_list_is_rejected() -> None:
    r = CliRunner().invoke(bench_app, ["fanout", "--streams", "1,x"])
    assert r.exit_code == 2


@pytest.mark.slow
@pytest.mark.cluster
def test_control_plane_smoke(tmp_path: Path) -> None:
    out = tmp_path / "cp.json"
    r = CliRunner().invoke(
        bench_app,
        ["control-plane", "--runs", "2", "--replicas", "2", "--commits", "2", "--groups", "3"]
        + ["--json", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "failover bench control-plane" in r.output  # the command line in the header
    assert "and 2 more like it" in r.output  # --groups: the setup line says what ran
    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["benchmark"] == "control-plane"
    assert doc["params"]["groups"] == 3
    res = doc["results"]
    _check_stats(res["commit_via_leader"], "commit_via_leader", 4)
    _check_stats(res["commit_via_follower"], "commit_via_follower", 4)
    _check_stats(res["etcd_txn"], "etcd_txn", 4)  # the floor, measured in the same run
    for key in ("sigkill_to_commit", "sigterm_to_new_leader", "sigterm_to_commit", "sigterm_to_exit"):
        _check_stats(res[key], key, 2)
    assert len(doc["runs"]) == 2
    assert doc["handover_commits"] == [1, 1]  # each hand-over committed its one Switch once
    assert "2 of 2 committed their one Switch exactly once" in r.output
    assert doc["machine"]["cpus_usable"] >= 1


@pytest.mark.slow
@pytest.mark.cluster
def test_fanout_smoke(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    r = CliRunner().invoke(
        bench_app,
        [
            "fanout",
            "--streams",
            "1,5",
            "--replicas",
            "1",
            "--runs",
            "2",
            "--idle-seconds",
            "0.5",
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "failover bench fanout" in r.output
    assert "idle streams: coordinator CPU" in r.output
    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["benchmark"] == "fanout"
    assert [(x["streams"], x["replicas"]) for x in doc["results"]] == [(1, 1), (5, 1)]
    for x in doc["results"]:
        _check_stats(x["last_stream"], "last_stream", 2)
        _check_stats(x["all_streams"], "all_streams", 2 * x["streams"])
        assert x["etcd_members"] == 1
        assert x["idle"]["coordinator_cpu_ms_per_s_per_1000_streams"] >= 0
        assert x["connections"] == min(4, x["streams"])  # shared by default


def test_fanout_channel_per_stream_smoke(tmp_path: Path) -> None:
    """One HTTP/2 connection per stream, as real sidecars have (per-connection costs measured)."""
    out = tmp_path / "fanout.json"
    args = ["fanout", "--streams", "5", "--replicas", "1", "--runs", "1", "--channel-per-stream"]
    r = CliRunner().invoke(bench_app, [*args, "--idle-seconds", "0.5", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["params"]["channel_per_stream"] is True
    assert [x["connections"] for x in doc["results"]] == [5]


@pytest.mark.slow
@pytest.mark.cluster
def test_fanout_operator_during_fanout_smoke(tmp_path: Path) -> None:
    """Each run gets an idle commit, the fan-out Switch, a Switch sent mid-fan-out and a bare
    etcd transaction beside it; with --stream-replicas the streams go to a replica that does
    not campaign, none to the leader; with --split-cores (2 CPUs or more) the two sides are
    pinned to disjoint CPU sets."""
    out = tmp_path / "fanout-op.json"
    own_cpus = os.sched_getaffinity(0)
    split = len(own_cpus) >= 2
    r = CliRunner().invoke(
        bench_app,
        [
            "fanout",
            "--streams",
            "5",
            "--replicas",
            "1",
            "--runs",
            "2",
            "--operator-during-fanout",
            "--stream-replicas",
            "1",
            *(["--split-cores"] if split else []),
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "operator replies during the fan-out" in r.output
    assert "1+1 stream-only" in r.output
    (x,) = json.loads(out.read_text())["results"]
    _check_stats(x["operator"]["idle_commit"], "idle_commit", 2)
    _check_stats(x["operator"]["switch_during_fanout"], "switch_during_fanout", 2)
    _check_stats(x["operator"]["etcd_txn_during_fanout"], "etcd_txn_during_fanout", 2)
    assert all("during_switch_us" in run and run["during_floor_txn_us"] > 0 for run in x["runs"])
    assert x["leader"] == "c1" and x["stream_only_replicas"] == 1
    assert x["streams_per_replica"] == {"c1": 0, "s1": 5}
    if split:
        assert "cores split" in r.output
        cores = x["cores"]
        assert cores["control_plane"] and cores["fanout"]
        assert not set(cores["control_plane"]) & set(cores["fanout"])
        # The bench ran in this process: it must have its CPUs back (else every later test
        # of the session, and every child it starts, runs on half the machine).
        assert os.sched_getaffinity(0) == own_cpus


@pytest.mark.slow
@pytest.mark.cluster
def test_fanout_etcd_watch_side_by_side(tmp_path: Path) -> None:
    """The same switches reach S etcd watches (sidecars watching etcd directly), over as
    many connections as the streams had, and both rows are printed side by side."""
    out = tmp_path / "fanout-watch.json"
    args = ["fanout", "--streams", "6", "--replicas", "1", "--runs", "2", "--etcd-watch"]
    r = CliRunner().invoke(bench_app, [*args, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "sidecars watching etcd directly" in r.output
    (x,) = json.loads(out.read_text())["results"]
    ew = x["etcd_watch"]
    assert ew["watches"] == 6 and ew["connections"] == x["connections"] == 4
    _check_stats(ew["last_watch"], "last_watch", 2)
    _check_stats(ew["all_watches"], "all_watches", 12)
    assert ew["mean_window"]["cpu_ms"].keys() >= {"bench", "c1"}


@pytest.mark.slow
@pytest.mark.cluster
def test_fanout_bare_floor_side_by_side(tmp_path: Path) -> None:
    """The same S streams and runs against a bare grpc.aio push-with-acks process, with ours
    over it as a ratio (the floor of issue 13's fan-out target)."""
    out = tmp_path / "fanout-bare.json"
    args = ["fanout", "--streams", "6", "--replicas", "1", "--runs", "2", "--bare-floor"]
    r = CliRunner().invoke(bench_app, [*args, "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "bare grpc.aio push-with-acks" in r.output and "ours / bare" in r.output
    (x,) = json.loads(out.read_text())["results"]
    b = x["bare_floor"]
    _check_stats(b["last_stream"], "bare last_stream", 2)
    _check_stats(b["all_streams"], "bare all_streams", 12)
    assert b["cpu_ms_per_decision"] >= 0


@pytest.mark.parametrize("flag", ["--etcd-watch", "--bare-floor"])
def test_side_by_side_variants_need_plaintext(flag: str) -> None:
    r = CliRunner().invoke(bench_app, ["fanout", flag, "--tls", "on"])
    assert r.exit_code == 2 and "--tls off only" in r.output


def test_cli_startup_smoke(tmp_path: Path) -> None:
    """Every row gets its samples: the operator commands really connect to the bench's socket."""
    out = tmp_path / "cli.json"
    r = CliRunner().invoke(bench_app, ["cli-startup", "--runs", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["benchmark"] == "cli-startup"
    rows = doc["results"]
    for name in ("status", "switch", "python floor"):
        _check_stats(rows[name], name, 2)
        assert rows[f"{name} CPU"]["count"] == 2


def test_policy_pass_smoke(tmp_path: Path) -> None:
    """Every size gets its rows, and the settled view stays settled (the bench checks it)."""
    out = tmp_path / "pass.json"
    args = ["policy-pass", "--groups", "1,20", "--hosts", "0,3", "--passes", "10", "--json", str(out)]
    r = CliRunner().invoke(bench_app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["ok"] is True and doc["benchmark"] == "policy-pass"
    for g in (1, 20):
        for h in (0, 3):
            for step in ("reconcile", "policy"):
                _check_stats(doc["results"][f"{step}, {g} groups, {h} hosts"], f"{step} {g}/{h}", 10)


def test_policy_pass_rejects_bad_sizes() -> None:
    r = CliRunner().invoke(bench_app, ["policy-pass", "--groups", "0", "--hosts", "1"])
    assert r.exit_code == 2 and "--groups must be" in r.output
