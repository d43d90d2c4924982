"""Local failover, measured: ``failover bench flip``.

In ONE process, so one monotonic clock times every stage: an in-process
venue simulator (``Venue``: gateways primary and backup on 127.0.0.1) and an
in-process sidecar ``Agent`` with its ``OrderPath``, given the group definition
and a decision directly (``on_definition`` / ``on_decision``; no coordinator).
A strategy submits an order every ~1 ms through ``OrderPath.submit``. Each run
injects a fault on the primary gateway with ``await venue.inject_fault(...)``
(``reset``: hard, connections closed and the listener gone; ``stall``: silent,
sockets open, nothing read or written) and records, from the instant just
before that call:

- flip: until the agent's effective route for the group becomes backup
  (``Agent.route_listeners``);
- first ack: until the strategy's sink receives the first ACKED outcome with
  path backup (includes waiting for the strategy's next order, up to ~1 ms).

Then the fault is recovered, two newer decisions move the route back to primary
at once (``[backup, primary]`` then ``[primary, backup]``: a decision that
changes the order skips the failback hold-down), and the next run starts once
both paths are logged on again.

``--compare-metrics``: every run twice, the same agent alternately without
instruments and with the sidecar's instruments behind a Prometheus
``/metrics`` endpoint (off/on, on/off, ...), both rows and on/off at p50 and
p99 reported (``failover.bench.overhead``).

Modules: ``rig`` (the venue, the agent and the strategy in this process),
``command`` (the runs, the table and the JSON). Runnable alone:
``python -m failover.bench.flip --runs 50``.
"""

from failover.bench.flip.command import flip

__all__ = ["flip"]
