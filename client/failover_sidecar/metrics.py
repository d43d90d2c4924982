"""The sidecar's instruments: flip stages, orders, in-doubt resolutions, paths, routes, the link.

Nothing here runs per message: orders are counted by the order path's own
``Counter`` (an int increment it already does) and observed when a reader
collects; path state, RTT, routes and the link are gauges read the same way.
Histograms are recorded once per flip. Observation callbacks run on the
exporter's thread, so they copy what they read and never write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from failover_sidecar.status import PathState

if TYPE_CHECKING:
    from failover_sidecar.agent import Agent


class SidecarMetrics:
    """Instruments of one sidecar; ``bind`` tells the gauges what to read."""

    def __init__(self, meter: Meter) -> None:
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
        self._attrs: dict[tuple[str, ...], dict[str, str]] = {}
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
        ):  # fmt: skip
            meter.create_observable_gauge(name, callbacks=[cb], unit=unit, description=desc)

    def _a(self, *kv: str) -> dict[str, str]:
        a = self._attrs.get(kv)
        if a is None:
            a = self._attrs[kv] = dict(zip(kv[::2], kv[1::2], strict=True))
        return a

    def bind(self, agent: Agent, orders: Callable[[], Counter[str]]) -> None:
        self._agent = agent
        self._orders = orders

    # --- recording ---------------------------------------------------------

    def flipped(self, group: str, trigger: str, cause: str | None, detect_us: int, flip_us: int) -> None:
        """A flip: detect (local flips only: last sign of life -> declared) and flip (-> route changed)."""
        reason = cause or trigger
        self._flips.add(1, self._a("group", group, "trigger", trigger, "reason", reason))
        if trigger == "local":  # 0 for a reset or refusal: known the moment it happened
            self._stage.record(detect_us / 1e6, self._a("stage", "detect", "group", group, "reason", reason))
        self._stage.record(flip_us / 1e6, self._a("stage", "flip", "group", group, "reason", reason))

    def first_ack(self, group: str, reason: str, first_ack_us: int) -> None:
        self._stage.record(
            first_ack_us / 1e6, self._a("stage", "first_ack", "group", group, "reason", reason)
        )

    def resolved(self, result: str) -> None:
        self._resolutions.add(1, self._a("result", result))

    def refused(self, reason: str) -> None:
        self._refusals.add(1, self._a("reason", reason))

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
