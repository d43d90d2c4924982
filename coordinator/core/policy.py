"""The failover policy: a pure, synchronous state machine.

``evaluate(snapshot, memory, now_ms)`` looks at one consistent view (group
definitions, operator controls, current decisions, per-host path health)
and returns the decisions to commit, each with its reason and evidence, plus
the memory to carry to the next call and each group's health status. No
I/O, no clock of its own: the same inputs always give the same outputs.

Definitions, per group (``GroupSpec.policy``):

* A host's report on a path is UP, DOWN (with a cause) or absent; absent is
  unknown, never down.
* A path is **failing** when at least ``fail_hosts`` hosts report it down
  (when set), or more than ``fail_fraction`` of the hosts reporting on it
  do, or, with ``slow_threshold_ms`` set, that many report its heartbeat RTT
  p99 above the threshold.
* A path is **healthy for the group** when it is not failing and at least
  ``max(min_hosts_up, ceil(fraction_up x reporting))`` hosts report it up.
* The group fails over when its active path is failing: to the
  highest-priority path healthy for the group that is not drained. When no
  path is healthy the group is **degraded**: the order is kept (each host
  uses whatever is healthy locally) and the policy never halts on its own.
* At most one automatic decision per group per ``min_dwell_ms``, counted from
  what was committed: the dwell starts when the policy sees its proposal in
  the routes (a health decision moving to the proposed path), so a proposal
  that lost a race to another commit holds nothing back and is proposed
  again on the next evaluation.
* Failback (off by default): with ``auto_failback``, move back to the
  preferred (first non-drained) path once it has been healthy for the group
  for ``failback_hold_s``.
* Operator controls win: halted or paused groups get no automatic decision;
  a pinned group moves to its pin and nowhere else; drained paths are never
  chosen (moving off a drained active path is the reconciler's job). Drain
  beats pin: a pin on a drained path holds nothing (``core.controls``, the
  rule the reconciler uses too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from coordinator.core.controls import effective
from coordinator.core.health import HealthTable, PathReport, State
from coordinator.core.reconcile import Proposal
from failover.model.spec import ControlsSpec, DecisionRecord, GroupSpec, PolicySpec

HealthView = Mapping[str, Mapping[tuple[str, str], PathReport]]  # host -> (group, path) -> report
_NO_CONTROLS = ControlsSpec()  # read only: a group without controls (built once, not per group)


@dataclass(frozen=True)
class Snapshot:
    groups: Mapping[str, GroupSpec]
    controls: Mapping[str, ControlsSpec]
    routes: Mapping[str, DecisionRecord]
    health: HealthView
    health_ready: bool = True


@dataclass(frozen=True)
class Memory:
    """What the policy remembers between evaluations (returned, never mutated)."""

    # When the last automatic decision the policy saw committed was proposed (dwell start).
    last_auto_ms: Mapping[str, float] = field(default_factory=dict)
    # Automatic decisions proposed and not yet seen committed: group -> (target, proposed at).
    # A proposal that loses its race is simply proposed again; it holds nothing back.
    proposed: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    # The route each group had at the last evaluation, to notice a newly committed one.
    seen: Mapping[str, DecisionRecord] = field(default_factory=dict)
    preferred_healthy_since_ms: Mapping[str, float] = field(default_factory=dict)
    # Earliest time a re-evaluation may decide something without new input
    # (a dwell or a failback hold running out); None: nothing pending.
    wake_at_ms: float | None = None


@dataclass(frozen=True)
class PathVerdict:
    path: str
    reporting: int
    up: int
    down: int
    slow: int
    failing: bool
    healthy: bool


@dataclass(frozen=True)
class GroupStatus:
    group: str
    degraded: bool
    verdicts: tuple[PathVerdict, ...]


def health_view(table: HealthTable) -> dict[str, dict[tuple[str, str], PathReport]]:
    return {h: dict(e.paths) for h, e in table.hosts.items()}


def judge(group: str, path: str, policy: PolicySpec, health: HealthView) -> PathVerdict:
    reports = [
        r
        for host in health.values()
        if (r := host.get((group, path))) is not None and r.state in (State.UP, State.DOWN)
    ]
    return _verdict(path, policy, reports)


def reports_by_path(health: HealthView) -> dict[tuple[str, str], list[PathReport]]:
    """Every host's up or down report, by (group, path), in host order: one walk of the
    table per evaluation instead of one per group and path (hosts x groups x paths)."""
    out: dict[tuple[str, str], list[PathReport]] = {}
    for host in health.values():
        for key, r in host.items():
            if r.state in (State.UP, State.DOWN):
                out.setdefault(key, []).append(r)
    return out


def _verdict(path: str, policy: PolicySpec, reports: Sequence[PathReport]) -> PathVerdict:
    n = len(reports)
    up = sum(1 for r in reports if r.state is State.UP)
    down = n - up
    slow = 0
    if policy.slow_threshold_ms:
        slow = sum(
            1 for r in reports if r.state is State.UP and r.rtt_p99_us > policy.slow_threshold_ms * 1000
        )

    def over(count: int) -> bool:
        if count == 0:
            return False
        if policy.fail_hosts and count >= policy.fail_hosts:
            return True
        return count > policy.fail_fraction * n

    failing = over(down) or over(slow)
    need_up = max(policy.min_hosts_up, math.ceil(policy.fraction_up * n))
    healthy = not failing and up >= max(need_up, 1)
    return PathVerdict(path, n, up, down, slow, failing, healthy)


def _evidence(group: str, path: str, health: HealthView) -> list[str]:
    out = []
    for host, paths in health.items():
        r = paths.get((group, path))
        if r is not None and r.state in (State.UP, State.DOWN):
            out.append(f"{host}:{path}={r.state.value}" + (f"/{r.cause}" if r.cause else ""))
    return sorted(out)


def _order(spec: GroupSpec, first: str, verdicts: Mapping[str, PathVerdict], drained: set[str]) -> list[str]:
    """first, then the other non-drained paths: healthy ones by priority, then the rest by priority."""
    rest = [p for p in spec.path_names() if p != first and p not in drained]
    rest.sort(key=lambda p: not verdicts[p].healthy)
    return [first, *rest]


def _note_committed(
    group: str,
    route: DecisionRecord,
    known: bool,
    proposed: dict[str, tuple[str, float]],
    last_auto: dict[str, float],
    now_ms: float,
) -> None:
    """A new route is in: if it is an automatic decision, its dwell starts (when it was proposed)."""
    pending = proposed.pop(group, None)
    if not known or route.trigger.kind != "health" or not route.paths:
        return  # the first route seen is history from before this memory; others are not automatic
    ours = pending is not None and pending[0] == route.paths[0]
    last_auto[group] = pending[1] if ours and pending is not None else now_ms


def evaluate(
    snap: Snapshot, memory: Memory, now_ms: float
) -> tuple[list[Proposal], Memory, list[GroupStatus]]:
    proposals: list[Proposal] = []
    last_auto = dict(memory.last_auto_ms)
    proposed = dict(memory.proposed)
    seen = dict(memory.seen)
    healthy_since = dict(memory.preferred_healthy_since_ms)
    statuses: list[GroupStatus] = []
    wakes: list[float] = []
    by_path = reports_by_path(snap.health)
    for name in sorted(snap.groups):
        spec = snap.groups[name]
        pol = spec.policy
        names = spec.path_names()
        ctl = snap.controls.get(name) or _NO_CONTROLS
        eff = effective(ctl, names)
        drained = set(eff.drained)
        verdicts = {p: _verdict(p, pol, by_path.get((name, p), ())) for p in names}
        usable = [p for p in names if p not in drained and verdicts[p].healthy]
        statuses.append(
            GroupStatus(name, degraded=not usable and snap.health_ready, verdicts=tuple(verdicts.values()))
        )
        route = snap.routes.get(name)
        last_seen = seen.get(name)
        if route is not None and last_seen is not route and last_seen != route:
            _note_committed(name, route, name in seen, proposed, last_auto, now_ms)
            seen[name] = route
        preferred = next((p for p in names if p not in drained), None)
        # Track how long the preferred path has been healthy for the group (failback hold).
        if preferred is not None and verdicts[preferred].healthy:
            healthy_since.setdefault(name, now_ms)
        else:
            healthy_since.pop(name, None)
        if route is None or not route.paths or ctl.halted or not snap.health_ready:
            continue
        active = route.paths[0]
        if eff.pinned is not None:
            if active != eff.pinned:
                proposals.append(
                    Proposal(
                        name,
                        _order(spec, eff.pinned, verdicts, drained),
                        f"pinned to {ctl.pinned} by {ctl.operator or 'operator'}: {ctl.reason}".rstrip(": "),
                        "control",
                    )
                )
            continue
        if ctl.paused:
            continue
        v = verdicts.get(active)
        wants_failback = (
            pol.auto_failback
            and preferred is not None
            and active != preferred
            and verdicts[preferred].healthy
        )
        last = last_auto.get(name)
        if last is not None and now_ms - last < pol.min_dwell_ms:
            if (v is not None and v.failing) or wants_failback:
                wakes.append(last + pol.min_dwell_ms)
            continue
        if v is not None and v.failing:
            target = next((p for p in usable if p != active), None)
            if target is None:
                continue  # degraded: keep the order, never halt on our own
            what = "slow" if v.slow and not v.down else "down"
            count = v.slow if what == "slow" else v.down
            proposals.append(
                Proposal(
                    name,
                    _order(spec, target, verdicts, drained),
                    f"{active} {what} on {count} of {v.reporting} reporting hosts: moving to {target}",
                    "health",
                    evidence=[*_evidence(name, active, snap.health), *_evidence(name, target, snap.health)],
                )
            )
            proposed[name] = (target, now_ms)
            continue
        if wants_failback and preferred is not None:
            due = healthy_since.get(name, now_ms) + pol.failback_hold_s * 1000
            if now_ms < due:
                wakes.append(due)
                continue
            proposals.append(
                Proposal(
                    name,
                    _order(spec, preferred, verdicts, drained),
                    f"failback: {preferred} healthy for the group for {pol.failback_hold_s}s",
                    "health",
                    evidence=_evidence(name, preferred, snap.health),
                )
            )
            proposed[name] = (preferred, now_ms)
    new_memory = replace(
        memory,
        last_auto_ms=last_auto,
        proposed=proposed,
        seen=seen,
        preferred_healthy_since_ms=healthy_since,
        wake_at_ms=min(wakes) if wakes else None,
    )
    return proposals, new_memory, statuses
