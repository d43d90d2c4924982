"""Measurements are queued on the hot path and reach the SDK when a reader collects (pure)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from failover.telemetry import metrics as telemetry
from failover.telemetry.metrics import Instruments


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


class _Probe(Instruments):
    def __init__(self, tel: telemetry.Telemetry, max_pending: int) -> None:
        super().__init__(tel.meter, max_pending)
        self.hist = tel.meter.create_histogram("probe.duration", unit="s")
        self.count = tel.meter.create_counter("probe.events")

    def seen(self, seconds: float) -> None:
        self._record(self.hist.record, seconds, self._a("stage", "flip"))
        self._record(self.count.add, 1, self._a("stage", "flip"))


def test_queued_measurements_are_seen_by_the_next_collection() -> None:
    reader = InMemoryMetricReader()
    tel = telemetry.build("test", "t1", readers=[reader])
    try:
        p = _Probe(tel, max_pending=100)
        for _ in range(5):
            p.seen(0.0003)
        assert len(p._pending) == 10  # nothing handed to the SDK yet
        pts = _points(reader)
        assert len(p._pending) == 0
        (h,) = pts["probe.duration"]
        assert h.count == 5 and h.attributes == {"stage": "flip"}
        assert [c.value for c in pts["probe.events"]] == [5]
        assert [d.value for d in pts["failover.telemetry.dropped"]] == [0]
        assert p._a("stage", "flip") is p._a("stage", "flip")  # one dict per label set
    finally:
        tel.shutdown()


def test_with_nothing_collecting_the_queue_is_bounded_and_drops_are_counted() -> None:
    reader = InMemoryMetricReader()
    tel = telemetry.build("test", "t1", readers=[reader])
    try:
        p = _Probe(tel, max_pending=6)
        for _ in range(5):
            p.seen(0.001)
        assert len(p._pending) == 6 and p.dropped == 4
        pts = _points(reader)
        assert pts["probe.duration"][0].count == 3  # the newest three survived
        assert [d.value for d in pts["failover.telemetry.dropped"]] == [4]
    finally:
        tel.shutdown()
