"""Every long-running process freezes what start-up built before it serves, and counts its pauses.

A full collection scans every tracked object. In a running sidecar about 64,000 of them
are what importing and configuring left, and a full collection over them stopped its
event loop (every order, every path check) for 60-75 ms; frozen, 2-3 ms
(docs/benchmarks.md, "The garbage collector of the sidecar").
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from typer.testing import CliRunner

from failover import cli, gc_policy
from failover.telemetry import gc_pauses
from failover.telemetry.metrics import build


@pytest.fixture
def restore_gc() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


def _order(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(gc_policy, "freeze_startup_heap", lambda: calls.append("freeze"))
    monkeypatch.setattr(cli, "serve", lambda make: calls.append("serve"))
    monkeypatch.setattr("failover.logs.setup", lambda *a, **k: None)
    return calls


def test_the_sidecar_command_freezes_the_startup_heap_before_it_serves(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _order(monkeypatch)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "host_id: h1\ngroups: [g]\ncoordinators: ['127.0.0.1:1']\n"
        f"state_file: {tmp_path / 'state.json'}\nlisten: {{socket: {tmp_path / 's.sock'}}}\n"
    )
    r = CliRunner().invoke(cli.app, ["sidecar", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert calls == ["freeze", "serve"]


def test_the_venue_simulator_freezes_its_startup_heap_before_it_serves(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(gc_policy, "freeze_startup_heap", lambda: calls.append("freeze"))
    monkeypatch.setattr("failover.venue.cli._run", lambda make: calls.append("serve"))
    from failover.venue.cli import venue_app

    r = CliRunner().invoke(venue_app, ["run", "--gateway", "primary=127.0.0.1:0"])
    assert r.exit_code == 0, r.output
    assert calls == ["freeze", "serve"]


def test_freezing_leaves_a_full_collection_only_what_was_made_since(restore_gc: None) -> None:
    gc_policy.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the test process's imports
    made_since = [[i] for i in range(100)]
    assert len(gc.get_objects()) < frozen
    del made_since


def test_a_frozen_block_unfreezes_after_it(restore_gc: None) -> None:
    with gc_policy.frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_pauses_are_counted_per_generation_and_exported() -> None:
    reader = InMemoryMetricReader()
    telemetry = build("test", "gc", readers=[reader])
    try:
        before = gc_pauses.PAUSES.collections[2]
        gc.collect(2)
        assert gc_pauses.PAUSES.collections[2] == before + 1
        assert gc_pauses.PAUSES.longest_since(0.0) > 0.0
        data = reader.get_metrics_data()
        seen = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert {"failover.gc.collections", "failover.gc.pause", "failover.gc.pause.max"} <= seen.keys()
        gens = {p.attributes["generation"]: p.value for p in seen["failover.gc.collections"].data.data_points}
        assert gens["2"] >= before + 1
    finally:
        telemetry.shutdown()


def test_the_longest_recent_pause_forgets_old_ones() -> None:
    p = gc_pauses.GcPauses()
    p.note(0, 0.030, at=100.0)
    p.note(1, 0.002, at=105.0)
    assert p.longest_since(99.0) == pytest.approx(0.030)
    assert p.longest_since(101.0) == pytest.approx(0.002)
    assert p.longest_since(106.0) == 0.0
    assert p.collections == [1, 1, 0] and p.seconds[0] == pytest.approx(0.030)
