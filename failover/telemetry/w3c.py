"""W3C trace context made without the OpenTelemetry SDK, for short-lived clients (the CLI).

An operator command is the root of the trace its decision belongs to: the CLI
names a span of its own (a fresh span id, and a fresh trace id unless the
environment's ``TRACEPARENT`` names a parent, as CI systems and ``otel-cli``
do) and sends it as gRPC metadata. The coordinator's decide and commit spans
are then its children. Making two random ids costs microseconds; importing
the SDK would cost the operator's incident time tens of milliseconds.
"""

from __future__ import annotations

import os
import re
import secrets

METADATA_TRACEPARENT = "traceparent"
METADATA_TRACESTATE = "tracestate"
ENV_PARENT = "TRACEPARENT"
ENV_STATE = "TRACESTATE"

_PARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32


def _span_id() -> str:
    while True:
        s = secrets.token_hex(8)
        if s != "0" * 16:
            return s


def new_traceparent(parent: str = "") -> str:
    """A sampled version-00 traceparent for a new span: a child of ``parent`` when that is a
    valid version-00 traceparent (same trace id), else the root of a new trace."""
    m = _PARENT.fullmatch(parent.strip().lower())
    if m is not None and m.group(1) != _ZERO_TRACE and m.group(2) != "0" * 16:
        trace_id = m.group(1)
    else:
        trace_id = secrets.token_hex(16)
        while trace_id == _ZERO_TRACE:
            trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{_span_id()}-01"


def trace_id(traceparent: str) -> str:
    """The trace id of a version-00 traceparent ("" for anything else)."""
    m = _PARENT.fullmatch(traceparent)
    return m.group(1) if m else ""


def operator_metadata(environ: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata of one operator command: its span's traceparent (a child of
    ``$TRACEPARENT`` when set) and ``$TRACESTATE`` passed on when the parent is kept."""
    env = os.environ if environ is None else environ
    parent = env.get(ENV_PARENT, "")
    tp = new_traceparent(parent)
    md: tuple[tuple[str, str], ...] = ((METADATA_TRACEPARENT, tp),)
    state = env.get(ENV_STATE, "")
    if state and parent and trace_id(tp) == trace_id(parent.strip().lower()):
        md += ((METADATA_TRACESTATE, state),)
    return md
