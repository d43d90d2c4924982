"""Decision fan-out to real sidecars, measured: ``failover bench apply-latency``.


Real processes: A 1-member etcd, 3 coordinator processes, a
venue process and N sidecar processes (spread over the 3 replicas). Each run
commits an operator switch (Admin/Switch to the leader; the group is paused so
no automatic decision interleaves) and measures from the moment the bench's own
etcd watch (``EtcdStore.watch`` on the routes, run in a child process so the
pollers' load cannot delay it; same CLOCK_MONOTONIC) sees the new route revision
to the moment the LAST sidecar's GetStatus (polled over its unix socket, one
poller per sidecar, ~2 ms between polls) shows the new epoch in its route. The
poll reply's arrival is an upper bound of the apply; the send time of the poll
before it a lower bound: the gap is the resolution, reported with the results,
as is a cross-check without it (the time each sidecar logged applying the
decision). The coordinators probe freshness once a minute instead of every
250 ms: see ``System.start`` for the product bug this works around.
Modules: ``system`` (the child processes), ``watch`` (the bench's own etcd watch,
in a child process), ``poll`` (polling each sidecar, and the sidecars' log times),
``measure`` (the runs), ``command`` (the table and the JSON). Runnable alone:
``python -m failover.bench.apply_latency --runs 20``.
"""

from failover.bench.apply_latency.command import apply_latency

__all__ = ["apply_latency"]
