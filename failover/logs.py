"""Logging: stdlib logging rendered by structlog (readable on a terminal, JSON otherwise).

Every line logged while a span is current (a decision being committed, pushed
or applied, a flip) carries that span's ``trace_id`` and ``span_id``, so a
log search finds the trace and a trace viewer's id finds the lines.
"""

from __future__ import annotations

import logging
import sys

import structlog

from failover.log_limit import OutsideInputLimit
from failover.telemetry.tracing import add_trace_ids


def formatter(fmt: str = "auto", name: str = "") -> logging.Formatter:
    """structlog's rendering of stdlib records: ``console``, ``json``, or ``auto`` (console on a
    terminal, JSON otherwise); every line gets the current span's trace id, if any."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    render: list[structlog.types.Processor]
    if fmt == "json":  # tracebacks as text in the line, not a repr of exc_info
        render = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        render = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    pre: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    if name:
        pre.append(lambda _l, _m, ev: {**ev, "proc": name})
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        foreign_pre_chain=pre,
    )


def setup(level: str = "info", fmt: str = "auto", name: str = "") -> None:
    """Route every log line to stderr, rendered by :func:`formatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, name))
    handler.addFilter(OutsideInputLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("grpc", "etcd3aio", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
