"""The CLI's W3C context, made without the OpenTelemetry SDK."""

from __future__ import annotations

import subprocess
import sys

from coordinator.request_checks import trace_context
from failover.telemetry.w3c import new_traceparent, operator_metadata, trace_id
from tests.procs import REPO

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_new_traceparent_is_valid_sampled_and_fresh() -> None:
    a, b = new_traceparent(), new_traceparent()
    assert a != b and trace_id(a) != trace_id(b)
    for tp in (a, b):
        assert trace_context(tp, "") == (tp, "")  # what a coordinator accepts
        assert tp.startswith("00-") and tp.endswith("-01") and len(tp) == 55


def test_a_parent_keeps_its_trace_id_with_a_new_span_id() -> None:
    tp = new_traceparent(PARENT)
    assert trace_id(tp) == trace_id(PARENT)
    assert tp.split("-")[2] != PARENT.split("-")[2]


def test_a_malformed_or_invalid_parent_starts_a_new_trace() -> None:
    for bad in ("junk", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "01-abc", PARENT[:-1]):
        tp = new_traceparent(bad)
        assert trace_id(tp) not in ("", "0" * 32, trace_id(PARENT))


def test_operator_metadata_passes_the_state_only_with_its_parent() -> None:
    md = dict(operator_metadata({"TRACEPARENT": PARENT, "TRACESTATE": "k=v"}))
    assert trace_id(md["traceparent"]) == trace_id(PARENT) and md["tracestate"] == "k=v"
    md = dict(operator_metadata({"TRACESTATE": "k=v"}))
    assert set(md) == {"traceparent"}


def test_making_it_does_not_load_opentelemetry() -> None:
    code = (
        "import sys\nfrom failover.telemetry import w3c\nw3c.operator_metadata()\n"
        "print([m for m in sys.modules if m.startswith('opentelemetry')])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.stdout.strip() == "[]", (r.stdout, r.stderr)
