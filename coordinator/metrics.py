"""The coordinator's instruments: stage histograms, decisions, sessions, sync, leadership, freshness.

Recording sites call one method with plain values; attribute dicts are made
once per label set and reused, and measurements are queued for the SDK
(``Instruments``), so a push or an ack costs a dict lookup and a deque append.
Gauges (sessions, sync, leadership, freshness, etcd alarms) are observed only
when a reader collects: nothing is paid on the hot path.
Observation callbacks run on the exporter's thread, so they copy what they
read (``list(...)`` of a dict is atomic under the GIL) and never write.

Label cardinality is bounded: ``reason`` is a class of the decision's reason
(``reason_class``), never its free text; per-host figures are gauges by group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from coordinator.store.errors import StoreError
from coordinator.store.port import Store
from failover.model.spec import ZERO_EPOCH, DecisionRecord
from failover.telemetry.rpc_metrics import RpcInstruments

if TYPE_CHECKING:
    from coordinator.replica import Replica

log = logging.getLogger(__name__)

# Substring of a decision's reason -> its class (first match wins).
_REASON_CLASSES = (
    ("initial decision", "initial"),
    ("operator switch", "switch"),
    ("halted by", "halt"),
    ("resumed by", "resume"),
    ("drained by", "drain"),
    ("pinned to", "pin"),
    ("failback", "failback"),
    ("era bumped", "era"),
    ("group definition", "definition"),
    (" slow on ", "path_slow"),
    (" down on ", "path_down"),
)


def reason_class(reason: str) -> str:
    """A bounded label for a decision's free-text reason."""
    for needle, cls in _REASON_CLASSES:
        if needle in reason:
            return cls
    return "other"


class CoordinatorMetrics(RpcInstruments):
    """Instruments of one replica; ``replica`` labels its gauges.

    With ``rpc.server.duration``/``rpc.client.duration`` (RpcInstruments: the server's
    and peer channels' interceptors record into them) and etcd's request latency.
    """

    def __init__(self, meter: Meter, replica: str) -> None:
        super().__init__(meter)
        self.replica = replica
        self._stage = meter.create_histogram(
            "failover.stage.duration", unit="s", description="Time spent in one failover stage"
        )
        self._decisions = meter.create_counter(
            "failover.decisions", unit="{decision}", description="Decisions committed by this replica"
        )
        self._leader_terms = meter.create_counter(
            "failover.leader.changes", unit="{term}", description="Terms this replica began as leader"
        )
        self._refusals = meter.create_counter(
            "failover.stream.refusals", unit="{stream}", description="Sidecar streams refused, by reason"
        )
        self._etcd = meter.create_histogram(
            "failover.etcd.request.duration",
            unit="s",
            description="etcd requests by op (range, txn, lease_keepalive, ...) and outcome, per attempt",
        )
        self._nospace = meter.create_counter(
            "failover.etcd.nospace_errors", unit="{error}", description="Writes refused by etcd's NOSPACE"
        )
        # Exported at 0 from the start: a series born at its first refusal would show no
        # increase() until a second one (FailoverEtcdNoSpace reads it).
        self._nospace.add(0, self._a("replica", replica))
        self._replica: Replica | None = None
        self.alarms: list[str] = []
        self._alarms_known = False
        for name, unit, desc, cb in (
            ("failover.sidecars.connected", "{sidecar}", "Sidecar streams served here", self._connected),
            ("failover.sidecars.sync", "{sidecar}", "Sidecars per group: in_sync or behind", self._sync),
            (
                "failover.sidecars.shared_host_ids",
                "{host}",
                "Host ids two sidecar processes stream with at once here",
                self._shared,
            ),
            ("failover.leader.is_leader", "1", "1 while this replica holds the leadership", self._is_leader),
            ("failover.leader.term", "1", "Fencing token of the leader key", self._term),
            ("failover.replica.stale", "1", "1 while this replica considers itself stale", self._stale),
            ("failover.replica.lag", "{revision}", "Revisions the watch is behind a fresh read", self._lag),
            ("failover.replica.applied_revision", "{revision}", "Revision the watch applied", self._applied),
            ("failover.etcd.alarm", "1", "1 per active etcd alarm (NOSPACE, CORRUPT)", self._alarm_obs),
            ("failover.event_loop.lag", "s", "Largest event loop lag in the last 10 s", self._loop_lag),
        ):  # fmt: skip
            meter.create_observable_gauge(name, callbacks=[cb], unit=unit, description=desc)
        meter.create_observable_counter(
            "failover.fanout.gave_way",
            callbacks=[self._gave_way],
            unit="s",
            description="Time the fan-out waited for operator calls in progress here (coordinator/urgent.py)",
        )

    def bind(self, replica: Replica) -> None:
        """Gauges read this replica's state from now on."""
        self._replica = replica

    # --- recording ---------------------------------------------------------

    def committed(self, record: DecisionRecord, commit_us: int) -> None:
        """A decision committed by this replica's leader: its stages so far, then the commit."""
        kind, cls = record.trigger.kind, reason_class(record.reason)
        self._record(self._decisions.add, 1, self._a("group", record.group, "trigger", kind, "reason", cls))
        for st in record.stages:
            self.stage(st.stage, record.group, cls, st.duration_us)
        self.stage("commit", record.group, cls, commit_us)

    def stage(self, stage: str, group: str, reason: str, duration_us: int) -> None:
        if duration_us >= 0:
            self._record(
                self._stage.record,
                duration_us / 1e6,
                self._a("stage", stage, "group", group, "reason", reason),
            )

    def acked(self, group: str, push_to_ack_us: int, apply_us: int | None) -> None:
        """A sidecar acknowledged the push it was waiting on (push -> ack; its own apply time)."""
        self.stage("push_to_ack", group, "push", push_to_ack_us)
        if apply_us is not None:
            self.stage("apply", group, "push", apply_us)

    def term_began(self) -> None:
        self._record(self._leader_terms.add, 1, self._a("replica", self.replica))

    def refused(self, reason: str) -> None:
        """A sidecar stream refused (``limit``: max_streams reached; ``hello``: bad first message;
        ``denied``: another host or site than its certificate, or a group its site may not receive;
        ``overload``: the event loop ran late, see stream.shed_loop_lag_ms)."""
        self._record(self._refusals.add, 1, self._a("replica", self.replica, "reason", reason))

    def etcd_request(self, op: str, outcome: str, duration_s: float) -> None:
        """One etcd request (an attempt; a keepalive round trip) took ``duration_s``."""
        self._record(
            self._etcd.record, duration_s, self._a("replica", self.replica, "op", op, "outcome", outcome)
        )

    def nospace(self) -> None:
        self._record(self._nospace.add, 1, self._a("replica", self.replica))

    # --- observed ------------------------------------------------------------

    def _one(self, value: float) -> Iterator[Observation]:
        if self._replica is not None:
            yield Observation(value, self._a("replica", self.replica))

    def _connected(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(len(r.hub.sessions)) if r is not None else ()

    def _shared(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(len(r.hub.shared_hosts)) if r is not None else ()

    def _sync(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        if r is None:
            return []
        latest = {g: d.epoch for g, d in list(r.hub.cache.decisions.items())}
        counts: dict[tuple[str, str], int] = {}
        for s in list(r.hub.sessions.values()):
            acked = dict(list(s.acked.items()))
            for g in s.groups:
                if g not in latest:
                    continue
                state = "in_sync" if acked.get(g, ZERO_EPOCH) >= latest[g] else "behind"
                counts[(g, state)] = counts.get((g, state), 0) + 1
        for g in latest:
            for state in ("in_sync", "behind"):
                counts.setdefault((g, state), 0)
        return [
            Observation(n, self._a("replica", self.replica, "group", g, "state", st))
            for (g, st), n in sorted(counts.items())
        ]

    def _is_leader(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(1 if r is not None and r.election.is_leader else 0)

    def _term(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        if r is None or r.view.leader is None:
            return []
        return self._one(r.view.leader.token)

    def _stale(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(1 if r is not None and (r.freshness.state.stale or r.view.restore.detected) else 0)

    def _lag(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(r.freshness.state.lag_revisions) if r is not None else ()

    def _loop_lag(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(r.loop_lag.worst_since(time.monotonic() - 10.0)) if r is not None else ()

    def _gave_way(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(r.hub.urgent.held_s) if r is not None else ()

    def _applied(self, _: CallbackOptions) -> Iterable[Observation]:
        r = self._replica
        return self._one(r.mirror.revision) if r is not None else ()

    def _alarm_obs(self, _: CallbackOptions) -> Iterable[Observation]:
        if not self._alarms_known:
            return []
        active = set(self.alarms)
        return [
            Observation(1 if a in active else 0, self._a("replica", self.replica, "alarm", a))
            for a in ("NOSPACE", "CORRUPT")
        ]

    async def poll_alarms(self, store: Store, interval_s: float) -> None:
        """Read etcd's alarms every ``interval_s`` (a read, so it works even when NOSPACE refuses writes)."""
        while True:
            with contextlib.suppress(StoreError):
                self.alarms = await store.alarms()
                self._alarms_known = True
            await asyncio.sleep(interval_s)
