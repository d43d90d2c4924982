"""The coordinator process tunes its garbage collector before serving.

With Python's default young-generation threshold (700), each heartbeat tick over
1,000 idle streams triggered young collections while the tick's objects were
still alive; they were promoted and kept full collections (which scan the whole
heap) frequent: about 14 ms of CPU per second of a 1,000-stream replica
(docs/benchmarks.md, idle streams).
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from typer.testing import CliRunner

from failover import cli


@pytest.fixture
def restore_gc() -> Any:
    saved = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


def test_tune_gc_freezes_the_import_heap_and_collects_the_young_generation_less_often(
    restore_gc: Any,
) -> None:
    cli.tune_gc()
    assert gc.get_threshold() == cli.GC_THRESHOLDS
    assert cli.GC_THRESHOLDS[0] >= 10_000  # a tick's objects over 1,000 streams die before a collection
    assert gc.get_freeze_count() > 0


def test_the_coordinator_command_tunes_the_collector_before_it_serves(
    restore_gc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli, "tune_gc", lambda: calls.append("tune_gc"))
    monkeypatch.setattr(cli, "serve", lambda make: calls.append("serve"))
    monkeypatch.setattr("failover.logs.setup", lambda *a, **k: None)
    r = CliRunner().invoke(cli.app, ["coordinator", "--id", "c1", "--etcd", "127.0.0.1:1"])
    assert r.exit_code == 0, r.output
    assert calls == ["tune_gc", "serve"]
