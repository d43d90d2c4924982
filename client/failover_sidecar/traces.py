"""The host's spans of a failover: detect and flip (local), apply (a decision), and their context.

A path this host declares dead starts a trace: ``failover.detect`` (last sign
of life -> declared; zero long for a reset) and, when the route moved,
``failover.flip`` as its child (declared -> route changed). The health report
that tells the coordinators carries the last of them, so the replica's
report span and the leader's decide continue the same trace. A decision
received is ``failover.apply`` (received -> accepted into state), a child of
the pushing replica's span named in the decision; a route change it causes is
a ``failover.flip`` under it. Spans are made only on these events, never per
message; times come from the stage timings' monotonic clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from failover.telemetry import tracing

if TYPE_CHECKING:
    from failover.v1 import sidecar_pb2 as spb
    from failover.v1 import types_pb2 as pb
    from failover_sidecar.status import PathStatus


class SidecarTraces:
    def __init__(self, tracer: Tracer, host_id: str) -> None:
        self._tracer = tracer
        self._host = host_id

    def detected(self, st: PathStatus, declared_ns: int) -> Span:
        """``failover.detect`` for a path declared dead at ``declared_ns`` (monotonic); ended."""
        end = tracing.wall_ns(declared_ns)
        detect_us = int(st.detect_us or 0)
        span = self._tracer.start_span(
            "failover.detect",
            start_time=end - detect_us * 1000,
            attributes={
                "failover.group": st.group,
                "failover.path": st.path,
                "failover.host": self._host,
                "failover.cause": st.cause.value if st.cause is not None else "",
                "failover.detect_us": detect_us,
            },
        )
        span.end(end_time=end)
        return span

    def flipped(self, parent: Span, flip: spb.Flip) -> Span:
        """``failover.flip`` (the route change recorded in ``flip``) under ``parent``; ended."""
        end = tracing.wall_ns(flip.at_monotonic_ns)
        span = self._tracer.start_span(
            "failover.flip",
            context=trace.set_span_in_context(parent),
            start_time=end - flip.flip_us * 1000,
            attributes={
                "failover.group": flip.group,
                "failover.host": self._host,
                "failover.from_path": flip.from_path,
                "failover.to_path": flip.to_path,
                "failover.trigger": flip.trigger,
                "failover.cause": flip.cause,
            },
        )
        span.end(end_time=end)
        return span

    def applying(self, d: pb.Decision, received_ns: int) -> Span:
        """``failover.apply`` of decision ``d`` received at ``received_ns`` (monotonic); the
        caller ends it once the decision is in state. Its parent is the context ``d`` carries."""
        return self._tracer.start_span(
            "failover.apply",
            context=tracing.extract(d.traceparent, d.tracestate),
            start_time=tracing.wall_ns(received_ns),
            attributes={
                "failover.group": d.group,
                "failover.host": self._host,
                "failover.epoch": f"{d.epoch.era}:{d.epoch.revision}",
                "failover.paths": ",".join(d.paths) or "(halt)",
                "failover.reason": d.reason,
            },
        )
