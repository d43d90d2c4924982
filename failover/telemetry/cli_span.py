"""The operator command's own span, exported when the CLI is given a collector.

Only with ``FAILOVER_OTLP_ENDPOINT`` set (host:port of an OTLP/gRPC receiver, as
``otlp_endpoint`` in the processes' configs): then the command is worth the
OpenTelemetry SDK's import, and a trace viewer shows the decision's spans under
the command that caused them (``failover switch``, with the operator's host as
the instance). Without it the CLI sends two random ids (``w3c``) and exports
nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping

from failover.telemetry import tracing
from failover.telemetry.w3c import ENV_PARENT, ENV_STATE, METADATA_TRACEPARENT, METADATA_TRACESTATE

ENV_ENDPOINT = "FAILOVER_OTLP_ENDPOINT"
SERVICE = "failover-cli"


def start(
    endpoint: str, command: str, environ: Mapping[str, str]
) -> tuple[tuple[tuple[str, str], ...], Callable[[], None]]:
    """The metadata naming a new span ``command`` (a child of ``$TRACEPARENT`` when set), and
    the function that ends it and flushes it to ``endpoint`` (bounded; call it once, at exit)."""
    tr = tracing.build(SERVICE, socket.gethostname(), otlp_endpoint=endpoint)
    parent = tracing.extract(environ.get(ENV_PARENT, ""), environ.get(ENV_STATE, ""))
    span = tr.tracer.start_span(command, context=parent, attributes={"failover.command": command})
    tp, ts = tracing.inject(span)
    md: tuple[tuple[str, str], ...] = ((METADATA_TRACEPARENT, tp),)
    if ts:
        md += ((METADATA_TRACESTATE, ts),)

    def finish() -> None:
        span.end()
        tr.shutdown()

    return md, finish
