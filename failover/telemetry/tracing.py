"""One TracerProvider per process, and the W3C trace context that links processes.

A failover is one trace: the host's detect and flip, the replica's report, the
leader's decide and commit, every replica's push and every host's apply. The
context travels in the messages themselves (``traceparent``/``tracestate`` on
the health report, the forwarded health and the decision, also stored in etcd
with the decision), as W3C trace-context strings.

Spans are made only on failover events (a path declared dead, a decision
decided, pushed or applied), never per message. The provider always makes real
trace ids (so log lines can carry them and the context keeps flowing through a
process that exports nothing); it exports only when configured: OTLP/gRPC to
``otlp_endpoint`` (batched), or the exporters a test passes (synchronously).

No global provider is installed: several replicas may share one Python process
in tests, each with its own provider. A span is made current only around the
code that logs about it (``trace.use_span``), so the log processor below puts
its trace id on those lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "failover"
MAX_TRACEPARENT = 128
"""Version 00 is 55 characters; later versions may append fields. Longer is refused."""
MAX_TRACESTATE = 512
"""The W3C limit is 32 list members; 512 characters is the size every vendor must accept."""

_PROPAGATOR = TraceContextTextMapPropagator()

Carrier = tuple[str, str]
"""(traceparent, tracestate): what a message carries; ("", "") for none."""
NO_CONTEXT: Carrier = ("", "")
EXPORT_TIMEOUT_S = 2.0


@dataclass
class Tracing:
    """A process's tracer; ``shutdown`` flushes and stops the exporters (idempotent)."""

    provider: TracerProvider
    tracer: Tracer
    _closed: bool = field(default=False, repr=False)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.provider.shutdown()  # flushes what is batched, bounded by EXPORT_TIMEOUT_S


def build(
    service: str,
    instance: str,
    *,
    otlp_endpoint: str = "",
    exporters: Sequence[SpanExporter] = (),
) -> Tracing:
    """A provider exporting to ``exporters`` (each span as it ends) and, with ``otlp_endpoint``
    ("host:port", insecure channel), batched over OTLP/gRPC."""
    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = TracerProvider(resource=resource)
    for exp in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exp))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # Bounded: a collector that is down must not hold a stopping process for long.
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)
        provider.add_span_processor(
            BatchSpanProcessor(exporter, export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000))
        )
    return Tracing(provider, provider.get_tracer(TRACER_NAME))


_UNEXPORTED = TracerProvider()


def unexported() -> Tracer:
    """A tracer that makes real ids and exports nowhere (components built without one)."""
    return _UNEXPORTED.get_tracer(TRACER_NAME)


# --- the context on the wire ----------------------------------------------------------


def inject(span: Span) -> Carrier:
    """The W3C strings for ``span``'s context (("", "") for a span that is not valid)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")


def extract(traceparent: str, tracestate: str = "") -> Context | None:
    """The remote parent a message names; None when it names none or a malformed one.

    Too long a value is refused before parsing; a bad tracestate alone drops only the state.
    """
    if not traceparent or len(traceparent) > MAX_TRACEPARENT:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate and len(tracestate) <= MAX_TRACESTATE:
        carrier["tracestate"] = tracestate
    ctx = _PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def remote(carrier: Carrier) -> Span | None:
    """The remote span a carrier names, to make current (log lines carry its trace id); None for none."""
    ctx = extract(*carrier)
    return None if ctx is None else trace.get_current_span(ctx)


def trace_id_of(carrier: Carrier) -> str:
    """The 32-hex trace id a carrier names ("" for none)."""
    ctx = extract(*carrier)
    if ctx is None:
        return ""
    return format(trace.get_current_span(ctx).get_span_context().trace_id, "032x")


# --- time -------------------------------------------------------------------------------


def wall_ns(monotonic_ns: int) -> int:
    """The wall-clock time (ns since the epoch) of a ``time.monotonic_ns()`` reading.

    Stage durations are measured on the monotonic clock; spans need wall-clock ends.
    """
    return time.time_ns() - (time.monotonic_ns() - monotonic_ns)


@contextmanager
def current(span: Span | None) -> Iterator[None]:
    """Make ``span`` current (for the log lines inside) without ending it; nothing for None."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False):
        yield


# --- logs ---------------------------------------------------------------------------------


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id``/``span_id`` of the current span, when there is one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = format(ctx.trace_id, "032x")
        event["span_id"] = format(ctx.span_id, "016x")
    return event
