"""A push to many sidecars records what a trace can hold, not one span event per ack.

The SDK keeps at most 128 events per span (``OTEL_SPAN_EVENT_COUNT_LIMIT``) and drops the
rest after building them; a push to 1,000 sidecars built 872 events per decision only to
have them dropped (about a tenth of a replica's fan-out CPU in a profile). The first 128
acks are events as before; the span counts them all and keeps the slowest.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from coordinator.push_traces import ACK_EVENTS, PushTraces
from failover.model.spec import DecisionRecord, Epoch


def _traces() -> tuple[PushTraces, InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    return PushTraces(provider.get_tracer("t"), "c1"), exp


def test_a_push_to_many_sidecars_keeps_the_first_acks_as_events_and_counts_them_all() -> None:
    pt, exp = _traces()
    rec = DecisionRecord(group="g", paths=["a", "b"], era=0, leader_id="c1", reason="r")
    n = 300
    pt.started(rec, Epoch(0, 5), [(i, f"h{i}") for i in range(n)])
    for i in range(n):
        pt.acked(i, "g", Epoch(0, 5), 10 + i)
    (span,) = exp.get_finished_spans()
    assert len(span.events) == ACK_EVENTS == 128
    assert [e.attributes["failover.host"] for e in span.events] == [f"h{i}" for i in range(ACK_EVENTS)]  # type: ignore[index]
    attrs = span.attributes or {}
    assert attrs["failover.acked"] == n
    assert attrs["failover.push_to_ack_max_us"] == 10 + n - 1
    assert attrs["failover.ack_events_dropped"] == n - ACK_EVENTS


def test_a_small_push_records_every_ack_and_drops_nothing() -> None:
    pt, exp = _traces()
    rec = DecisionRecord(group="g", paths=["a"], era=0, leader_id="c1", reason="r")
    pt.started(rec, Epoch(0, 7), [(1, "h1"), (2, "h2")])
    pt.acked(1, "g", Epoch(0, 7), 40)
    pt.acked(2, "g", Epoch(0, 7), None)
    (span,) = exp.get_finished_spans()
    assert len(span.events) == 2
    attrs = span.attributes or {}
    assert attrs["failover.acked"] == 2 and attrs["failover.push_to_ack_max_us"] == 40
    assert "failover.ack_events_dropped" not in attrs
