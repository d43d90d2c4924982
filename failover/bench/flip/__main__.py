"""``python -m failover.bench.flip``: the flip benchmark alone (same flags as ``failover bench flip``)."""

import sys

import typer

from failover.bench.flip.command import flip
from failover.bench.report import sigterm_as_interrupt

with sigterm_as_interrupt():
    try:
        typer.run(flip)
    except KeyboardInterrupt:
        sys.exit(130)
