"""The sidecar's instruments: flip stages, orders, in-doubt resolutions, paths, routes, the link.

Nothing here runs per message: orders are counted by the order path's own
``Counter`` (an int increment it already does) and observed when a reader
collects; path state, RTT, routes and the link are gauges read the same way.
Histograms and counters are queued once per flip (``Instruments``: the SDK
sees them when a reader collects, not on the flip's path), after the route
change has been announced, with attribute dicts made on a label set's first flip. Observation
callbacks run on the exporter's thread, so they copy what they read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from failover.telemetry.metrics import Attrs
from failover.telemetry.rpc_metrics import RpcInstruments
from failover_sidecar.status import PathState

if TYPE_CHECKING:
    from failover_sidecar.agent import Agent


class SidecarMetrics(RpcInstruments):
    """Instruments of one sidecar; ``bind`` tells the gauges what to read."""

    def __init__(self, meter: Meter) -> None:
        super().__init__(meter)
        self._stage = meter.create_histogram(
            "failover.stage.duration", unit="s", description="Time spent in one failover stage"
        )
        self._flips = meter.create_counter(
            "failover.flips", unit="{flip}", description="Changes of a group's effective route on this host"
        )
        self._resolutions = meter.create_counter(
            "failover.indoubt.resolutions", unit="{message}", description="In-doubt resolutions by result"
        )
        self._refusals = meter.create_counter(
            "failover.relay.refusals", unit="{message}", description="Messages refused by a limit, by reason"
        )
        # Bound once: a bound method is a new object on every attribute access.
        self._stage_record = self._stage.record
        self._flips_add = self._flips.add
        self._flip_attrs: dict[tuple[str, str, str | None], tuple[Attrs, Attrs | None, Attrs]] = {}
        self._ack_attrs: dict[tuple[str, str], Attrs] = {}
        self._agent: Agent | None = None
        self._orders: Callable[[], Counter[str]] | None = None
        meter.create_observable_counter(
            "failover.orders", callbacks=[self._orders_obs], unit="{message}", description="Outcomes by kind"
        )
        for name, unit, desc, cb in (
            ("failover.path.up", "1", "1 while the path is up on this host", self._path_up),
            ("failover.path.rtt", "s", "Heartbeat round trip, p99 of recent echoes", self._path_rtt),
            ("failover.route.effective", "1", "1 for the path this host uses per group", self._effective),
            ("failover.route.deviation", "1", "1 while off the decided path", self._deviation),
            ("failover.route.applied_revision", "{revision}", "Applied epoch revision", self._applied),
            ("failover.link.connected", "1", "1 while the coordinator stream is up, by replica", self._link),
            ("failover.state_file.failing", "1", "1 while the state file is behind: its last write failed",
             self._state_file_failing),
        ):  # fmt: skip
            meter.create_observable_gauge(name, callbacks=[cb], unit=unit, description=desc)

    def bind(self, agent: Agent, orders: Callable[[], Counter[str]]) -> None:
        self._agent = agent
        self._orders = orders

    # --- recording ---------------------------------------------------------

    def flipped(self, group: str, trigger: str, cause: str | None, detect_us: int, flip_us: int) -> None:
        """A flip: detect (local flips only: last sign of life -> declared) and flip (-> route changed).

        The attribute dicts of a (group, trigger, cause) are made on its first flip, so a
        flip costs one dict lookup and two or three queue appends."""
        key = (group, trigger, cause)
        a = self._flip_attrs.get(key)
        if a is None:
            reason = cause or trigger
            a = self._flip_attrs[key] = (
                self._a("group", group, "trigger", trigger, "reason", reason),
                # 0 for a reset or refusal: known the moment it happened; local flips only
                self._a("stage", "detect", "group", group, "reason", reason) if trigger == "local" else None,
                self._a("stage", "flip", "group", group, "reason", reason),
            )
        record = self._record
        record(self._flips_add, 1, a[0])
        if a[1] is not None:
            record(self._stage_record, detect_us / 1e6, a[1])
        record(self._stage_record, flip_us / 1e6, a[2])

    def first_ack(self, group: str, reason: str, first_ack_us: int) -> None:
        a = self._ack_attrs.get((group, reason))
        if a is None:
            a = self._ack_attrs[(group, reason)] = self._a(
                "stage", "first_ack", "group", group, "reason", reason
            )
        self._record(self._stage_record, first_ack_us / 1e6, a)

    def resolved(self, result: str) -> None:
        self._record(self._resolutions.add, 1, self._a("result", result))

    def refused(self, reason: str) -> None:
        self._record(self._refusals.add, 1, self._a("reason", reason))

    # --- observed ------------------------------------------------------------

    def _orders_obs(self, _: CallbackOptions) -> Iterable[Observation]:
        if self._orders is None:
            return []
        counts = dict(list(self._orders().items()))
        return [Observation(n, self._a("outcome", k)) for k, n in sorted(counts.items())]

    def _path_up(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        if a is None:
            return []
        return [
            Observation(1 if s.is_up else 0, self._a("group", g, "path", p))
            for (g, p), s in list(a.sessions.items())
        ]

    def _path_rtt(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        if a is None:
            return []
        out = []
        for (g, p), s in list(a.sessions.items()):
            st = s.status
            if st.state is PathState.UP and st.rtt_p99_us is not None:
                out.append(Observation(st.rtt_p99_us / 1e6, self._a("group", g, "path", p)))
        return out

    def _effective(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        if a is None:
            return []
        return [
            Observation(1, self._a("group", g, "path", r.effective))
            for g, r in list(a.routes.items())
            if r.effective
        ]

    def _state_file_failing(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        return [] if a is None else [Observation(1 if a.saver.failing else 0)]

    def _deviation(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        if a is None:
            return []
        return [
            Observation(1 if r.paths and r.deviates else 0, self._a("group", g))
            for g, r in list(a.routes.items())
        ]

    def _applied(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        if a is None:
            return []
        return [
            Observation(d.epoch.revision, self._a("group", g, "era", str(d.epoch.era)))
            for g, d in list(a.decisions.items())
        ]

    def _link(self, _: CallbackOptions) -> Iterable[Observation]:
        a = self._agent
        if a is None:
            return []
        st = a.link.status
        return [Observation(1 if st.connected else 0, self._a("replica", st.replica_id or "-"))]
