"""Counters an alert reads with increase() are exported at 0 from the start: a series born
at its first event shows no increase until a second one (FailoverEtcdNoSpace)."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from coordinator.metrics import CoordinatorMetrics
from failover.telemetry import metrics as telemetry
from tests.observability.test_deferred_metrics import _points


def test_the_nospace_counter_is_exported_at_zero_before_any_refusal() -> None:
    reader = InMemoryMetricReader()
    tel = telemetry.build("test", "c1", readers=[reader])
    try:
        CoordinatorMetrics(tel.meter, "c1")
        points = _points(reader).get("failover.etcd.nospace_errors", [])
        assert [(dict(p.attributes), p.value) for p in points] == [({"replica": "c1"}, 0)]
    finally:
        tel.shutdown()
