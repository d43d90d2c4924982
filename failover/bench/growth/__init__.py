"""Growth curves: ``failover bench growth``.

How the decision fan-out grows with its size, as a curve and a slope:
``--kind fanout`` runs the fan-out bench (``fanout.run_combination``: S streams
from this process, R replicas) at each stream count x replica count;
``--kind hosts`` runs the apply-latency system (``apply_latency.measure.apply_one``:
N real sidecar processes, 3 replicas) at each host count. Each point is bounded
in time; one that cannot run here is reported "not reached" with its reason and
the rest of the curve still prints. Per point: last received (or applied)
p50/p99/max, CPU per stream (or per host) per decision, the machine's load; then a
least-squares line per replica count (``fit``), the JSON, and with ``--png`` the
plot (``plot``, matplotlib imported only then). Modules: ``fit`` (pure),
``points`` (running the points), ``plot``, ``command``.
"""

from failover.bench.growth.command import growth

__all__ = ["growth"]
