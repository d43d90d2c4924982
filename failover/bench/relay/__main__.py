"""``python -m failover.bench.relay``: the relay benchmark alone (same flags as ``failover bench relay``)."""

import sys

import typer

from failover.bench.relay.command import relay
from failover.bench.report import sigterm_as_interrupt

with sigterm_as_interrupt():
    try:
        typer.run(relay)
    except KeyboardInterrupt:
        sys.exit(130)
