"""The W3C trace context on the wire: well-formed values pass, anything else is dropped, never refused."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace

from coordinator.config import HealthSection
from coordinator.keys import Keys
from coordinator.leader_health import LeaderHealth
from coordinator.request_checks import trace_context
from coordinator.sync_service import Session, SyncHub
from coordinator.view import ClusterView
from failover import logs
from failover.telemetry import tracing
from failover.v1 import admin_pb2 as apb
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("traceparent", "tracestate", "kept"),
    [
        (GOOD, "", (GOOD, "")),
        (GOOD, "vendor=x,other=y", (GOOD, "vendor=x,other=y")),
        (GOOD, "bad\nstate", (GOOD, "")),  # a bad tracestate alone drops only the state
        (GOOD, "x" * 513, (GOOD, "")),
        ("", "vendor=x", ("", "")),
        ("garbage", "", ("", "")),
        (GOOD.upper(), "", ("", "")),  # the spec says lowercase hex
        ("ff" + GOOD[2:], "", ("", "")),  # version ff is invalid
        (GOOD + "-extra", "", ("", "")),  # version 00 has exactly four fields
        ("01" + GOOD[2:] + "-future", "", ("01" + GOOD[2:] + "-future", "")),  # later versions may add
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "", ("", "")),  # all-zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", "", ("", "")),  # all-zero span id
        ("01" + GOOD[2:] + "-" + "x" * 200, "", ("", "")),  # too long
    ],
)
def test_trace_context_keeps_only_well_formed_values(traceparent: str, tracestate: str, kept: Any) -> None:
    assert trace_context(traceparent, tracestate) == kept


def test_inject_and_extract_round_trip_and_refuse_garbage() -> None:
    span = tracing.unexported().start_span("x")
    carrier = tracing.inject(span)
    ctx = tracing.extract(*carrier)
    assert ctx is not None
    remote = trace.get_current_span(ctx).get_span_context()
    assert remote.is_remote and remote.span_id == span.get_span_context().span_id
    assert tracing.trace_id_of(carrier) == format(span.get_span_context().trace_id, "032x")
    for bad in ("", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", GOOD + "x" * 200):
        assert tracing.extract(bad) is None and tracing.trace_id_of((bad, "")) == ""


class _Forwarder:
    def __init__(self) -> None:
        self.traces: list[tuple[str, str]] = []

    def report(self, sid: int, health: Any, trace: tuple[str, str] = ("", "")) -> None:
        self.traces.append(trace)


async def _feed(msgs: list[sync_pb2.SidecarMessage]) -> tuple[Session, _Forwarder]:
    hub = SyncHub.__new__(SyncHub)  # only the reader: no view, no etcd
    fwd = _Forwarder()
    hub.forwarder = fwd  # type: ignore[assignment]
    hub._by_host = {}
    s = Session(sid=1, host_id="h1", site="default", groups=("g1",), acked={})

    async def it() -> AsyncIterator[bytes]:
        for m in msgs:
            yield m.SerializeToString()

    await hub._read(s, it())
    return s, fwd


def test_a_bad_traceparent_on_the_stream_is_ignored_never_an_error() -> None:
    def report(n: int, traceparent: str) -> sync_pb2.SidecarMessage:
        ph = pb.PathHealth(group="g1", path="p1", state=pb.PATH_STATE_DOWN, seq=n)
        return sync_pb2.SidecarMessage(health=sync_pb2.HealthReport(paths=[ph], traceparent=traceparent))

    s, fwd = asyncio.run(_feed([report(1, "not a trace context" * 20), report(2, GOOD)]))
    assert s.error is None
    assert fwd.traces == [("", ""), (GOOD, "")]


def test_log_lines_carry_the_current_trace_id_and_auto_is_json_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal, whatever runs the tests
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs.formatter("auto"))
    lg = logging.getLogger("test.traces")
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    try:
        span = tracing.unexported().start_span("x")
        with trace.use_span(span, end_on_exit=True):
            lg.info("inside")
        lg.info("outside")
    finally:
        lg.removeHandler(handler)
    inside, outside = (json.loads(line) for line in buf.getvalue().splitlines())
    assert inside["event"] == "inside" and inside["trace_id"] == format(
        span.get_span_context().trace_id, "032x"
    )
    assert "trace_id" not in outside


def _forward(state: int, traceparent: str = "") -> apb.HealthForward:
    ph = pb.PathHealth(group="g1", path="primary", state=state)  # type: ignore[arg-type]
    host = apb.HostHealth(host_id="h1", site="default", full=True, paths=[ph], traceparent=traceparent)
    return apb.HealthForward(replica_id="c1", hosts=[host])


def test_the_leader_keeps_a_failures_trace_through_the_failed_reconnects_after_it() -> None:
    """Regression: a reconnect attempt (CONNECTING, then DOWN again, reported without a trace
    context) replaced the report that carried the failure's trace, so the leader's decide
    started a trace of its own instead of continuing the host's."""
    lh = LeaderHealth(
        replica_id="c1",
        settings=HealthSection(),
        view=ClusterView(Keys("/t/")),
        peers=None,  # type: ignore[arg-type]
        local_state=apb.HealthForward,
        wake=lambda: None,
        outage_since=lambda: 0.0,
    )
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    lh.accept(_forward(pb.PATH_STATE_UP))
    lh.accept(_forward(pb.PATH_STATE_DOWN, GOOD))
    lh.accept(_forward(pb.PATH_STATE_CONNECTING))
    lh.accept(_forward(pb.PATH_STATE_DOWN))
    assert lh._arrivals[("h1", "g1", "primary")][2] == (GOOD, "")
    lh.accept(_forward(pb.PATH_STATE_UP))  # recovered: the failure's trace is over
    assert lh._arrivals[("h1", "g1", "primary")][2] == ("", "")
    lh.accept(_forward(pb.PATH_STATE_DOWN, other))
    lh.accept(_forward(pb.PATH_STATE_CONNECTING, "garbage"))  # a bad context counts as none
    assert lh._arrivals[("h1", "g1", "primary")][2] == (other, "")
