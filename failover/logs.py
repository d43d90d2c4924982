"""Logging: stdlib logging rendered by structlog (readable on a terminal, JSON in containers)."""

from __future__ import annotations

import logging
import sys

import structlog


def setup(level: str = "info", fmt: str = "console", name: str = "") -> None:
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    pre: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if name:
        pre.append(lambda _l, _m, ev: {**ev, "proc": name})
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=pre,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("grpc", "etcd3aio", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
