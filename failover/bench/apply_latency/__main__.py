"""``python -m failover.bench.apply_latency``: the benchmark alone (``failover bench apply-latency``)."""

import sys

import typer

from failover.bench.apply_latency.command import apply_latency
from failover.bench.report import sigterm_as_interrupt

with sigterm_as_interrupt():
    try:
        typer.run(apply_latency)
    except KeyboardInterrupt:
        sys.exit(130)
