"""Relay overhead: what the sidecar adds to a strategy's round trip, and what one sidecar relays per core.

Three processes on 127.0.0.1, each its own, as in production:

- the venue simulator: ``python -m failover.cli venue run --gateway primary=... --gateway backup=...``;
- one sidecar: ``python -m failover.cli sidecar --config FILE``. No control plane runs: its
  state file is seeded before it starts with the group definition (paths primary and
  backup, both on the venue) and a decision ``[primary, backup]``, and a sidecar with no
  reachable coordinator routes on its stored state (static stability, a documented
  feature). Its ``coordinators`` list names an unused loopback port: the coordinator
  link keeps retrying it in the background, as it would with the control plane down;
- the strategy: this process. ``direct``: a minimal asyncio client of the venue
  protocol (``failover.wire.protocol``) on the primary gateway: logon, then for each
  message a ``new`` with a unique clordid and wait for its ``ack``. ``relay``: the
  strategy library (``failover_client.api.Sidecar``) over the sidecar's unix socket: for each
  message ``submit`` and wait for the outcome ACKED (the sidecar writes it to its warm
  primary session and relays the venue's ack back).

Measured, after the sidecar's GetStatus shows the route on primary with both paths up:

1. round trip, one message outstanding: strategy send -> ``ack`` (direct), strategy
   send -> outcome ACKED (relay), and the same client through a bare gRPC relay child
   (``bare_grpc``, the floor: ``bare_grpc.py``); ``--warmup`` of each first (not
   recorded), then ``--messages`` of each in alternating blocks (the order rotates),
   so drift and other load on the machine hit both alike. Every round trip is recorded
   (microseconds) in an HdrHistogram; the sidecar's cost is relay minus direct;
2. throughput: ``--throughput-messages`` per row with ``--inflight N`` messages
   outstanding (a sliding window: each outcome sends the next message), direct, relay
   and bare_grpc, and the CPU seconds each process used meanwhile (``/proc/<pid>/stat``
   utime+stime, all threads): messages / sidecar CPU-seconds is what one sidecar
   relays per second on one core.

3. the framed rows (``--no-framed`` skips them): the same strategy over the sidecar's
   framed socket (``failover_client.framed.FramedRelay``) and over a bare framed relay
   child (the floor), with direct TCP again in the same alternating blocks; then their
   throughput and counter checks (``framed_rows``).

``--compare-metrics``: a second sidecar process, identical but for its host id,
socket and ``metrics_listen``; ``relay_metrics`` goes through it, the order of
direct, relay and relay_metrics rotates per block, and on/off at p50 and p99
is reported (``failover.bench.overhead``).

Modules: ``rig`` (the child processes), ``direct`` (the direct strategy),
``guard`` (watchdog and bounded waits), ``measure`` (round trips, throughput,
checks), ``render`` (tables), ``command`` (the typer command and the JSON),
``framed_rows`` and ``bare_framed`` (the framed rows and their floor), ``bare_grpc``
(the gRPC rows' floor).

Runnable alone: ``python -m failover.bench.relay --messages 100000 --inflight 1,64``.
Progress goes to stderr, the header and tables to stdout, raw figures to ``--json``.
Exit codes: 0 done, 1 a measurement failed (the message says which; logs kept), 130
interrupted. Both children are stopped by their pid on the way out, also on Ctrl-C,
SIGTERM and errors, and every wait is bounded (``--max-seconds`` for the whole run,
``STALL_S`` without progress while measuring).
"""

from failover.bench.relay.command import parse_inflight, relay
from failover.bench.relay.measure import Dist
from failover.machine import proc_cpu_s

__all__ = ["Dist", "parse_inflight", "proc_cpu_s", "relay"]
