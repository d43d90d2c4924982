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

Cost: the leader evaluates after every commit, and a commit changes one group. A group
whose last evaluation was quiet and whose inputs are the very same (definition,
controls and route objects, and its version in the health table) is not
judged again: the same inputs give the same outcome, and a quiet outcome does not
depend on the clock (see ``evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from coordinator.core.controls import effective
from coordinator.core.health import HealthTable, PathReport, State
from coordinator.core.reconcile import Proposal
from failover.model.spec import ControlsSpec, DecisionRecord, GroupSpec, PolicySpec

HealthView = Mapping[str, Mapping[tuple[str, str], PathReport]]  # host -> (group, path) -> report
_KNOWN = (State.UP, State.DOWN)
_NO_CONTROLS = ControlsSpec()  # read only: a group without controls (built once, not per group)


@dataclass(frozen=True)
class Snapshot:
    groups: Mapping[str, GroupSpec]
    controls: Mapping[str, ControlsSpec]
    routes: Mapping[str, DecisionRecord]
    health: HealthView
    health_ready: bool = True
    # group -> a number that changes whenever any host's report on one of its paths
    # changes (``HealthTable.group_versions``; one table for the lifetime of a
    # ``Memory``). None: every group is judged on every evaluation.
    health_versions: Mapping[str, int] | None = None


class _Inputs(NamedTuple):
    """Everything one group's evaluation reads, but the clock and its own memory."""

    spec: GroupSpec
    controls: ControlsSpec | None
    route: DecisionRecord | None
    health_ready: bool
    health: int  # its version in the health table


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
    # Groups whose last evaluation was quiet: the inputs it saw and the status it gave.
    quiet: Mapping[str, tuple[_Inputs, GroupStatus]] = field(default_factory=dict)


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


def health_view(table: HealthTable) -> HealthView:
    """The table's reports by host, not copied: ``evaluate`` runs to its end without
    yielding, so the table cannot change under it (a copy per pass cost 1.5 ms at 100
    hosts x 600 paths)."""
    return {h: e.paths for h, e in table.hosts.items()}


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
            if r.state in _KNOWN:
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


@dataclass
class _Work:
    """One evaluation's memory being built (copies of ``Memory``'s maps) and its outputs."""

    last_auto: dict[str, float]
    proposed: dict[str, tuple[str, float]]
    seen: dict[str, DecisionRecord]
    healthy_since: dict[str, float]
    proposals: list[Proposal] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)


def _group(
    name: str, snap: Snapshot, reports: Callable[[str, str], Sequence[PathReport]], w: _Work, now_ms: float
) -> tuple[GroupStatus, bool]:
    """One group's verdicts, status and decision; True when it proposed or scheduled nothing
    (quiet: the same inputs would give the same status and leave its memory as it is)."""
    spec = snap.groups[name]
    pol = spec.policy
    names = spec.path_names()
    ctl = snap.controls.get(name) or _NO_CONTROLS
    eff = effective(ctl, names)
    drained = set(eff.drained)
    verdicts = {p: _verdict(p, pol, reports(name, p)) for p in names}
    usable = [p for p in names if p not in drained and verdicts[p].healthy]
    status = GroupStatus(name, degraded=not usable and snap.health_ready, verdicts=tuple(verdicts.values()))
    route = snap.routes.get(name)
    last_seen = w.seen.get(name)
    if route is not None and last_seen is not route and last_seen != route:
        _note_committed(name, route, name in w.seen, w.proposed, w.last_auto, now_ms)
        w.seen[name] = route
    preferred = next((p for p in names if p not in drained), None)
    # Track how long the preferred path has been healthy for the group (failback hold).
    if preferred is not None and verdicts[preferred].healthy:
        w.healthy_since.setdefault(name, now_ms)
    else:
        w.healthy_since.pop(name, None)
    if route is None or not route.paths or ctl.halted or not snap.health_ready:
        return status, True
    active = route.paths[0]
    if eff.pinned is not None:
        if active != eff.pinned:
            w.proposals.append(
                Proposal(
                    name,
                    _order(spec, eff.pinned, verdicts, drained),
                    f"pinned to {ctl.pinned} by {ctl.operator or 'operator'}: {ctl.reason}".rstrip(": "),
                    "control",
                    ctl.operator,
                )
            )
            return status, False
        return status, True
    if ctl.paused:
        return status, True
    v = verdicts.get(active)
    wants_failback = (
        pol.auto_failback and preferred is not None and active != preferred and verdicts[preferred].healthy
    )
    last = w.last_auto.get(name)
    if last is not None and now_ms - last < pol.min_dwell_ms:
        if (v is not None and v.failing) or wants_failback:
            w.wakes.append(last + pol.min_dwell_ms)
            return status, False
        return status, True
    if v is not None and v.failing:
        target = next((p for p in usable if p != active), None)
        if target is None:
            return status, True  # degraded: keep the order, never halt on our own
        what = "slow" if v.slow and not v.down else "down"
        count = v.slow if what == "slow" else v.down
        w.proposals.append(
            Proposal(
                name,
                _order(spec, target, verdicts, drained),
                f"{active} {what} on {count} of {v.reporting} reporting hosts: moving to {target}",
                "health",
                evidence=[*_evidence(name, active, snap.health), *_evidence(name, target, snap.health)],
            )
        )
        w.proposed[name] = (target, now_ms)
        return status, False
    if wants_failback and preferred is not None:
        due = w.healthy_since.get(name, now_ms) + pol.failback_hold_s * 1000
        if now_ms < due:
            w.wakes.append(due)
            return status, False
        w.proposals.append(
            Proposal(
                name,
                _order(spec, preferred, verdicts, drained),
                f"failback: {preferred} healthy for the group for {pol.failback_hold_s}s",
                "health",
                evidence=_evidence(name, preferred, snap.health),
            )
        )
        w.proposed[name] = (preferred, now_ms)
        return status, False
    return status, True


def _inputs(snap: Snapshot, name: str, versions: Mapping[str, int]) -> _Inputs:
    return _Inputs(
        snap.groups[name],
        snap.controls.get(name),
        snap.routes.get(name),
        snap.health_ready,
        versions.get(name, 0),
    )


def _unchanged(was: _Inputs, snap: Snapshot, name: str, versions: Mapping[str, int]) -> bool:
    """The very objects (the view replaces a value when its key changes) and the same version."""
    return (
        was.spec is snap.groups[name]
        and was.controls is snap.controls.get(name)
        and was.route is snap.routes.get(name)
        and was.health_ready == snap.health_ready
        and was.health == versions.get(name, 0)
    )


def _reports_for(
    health: HealthView, keys: Sequence[tuple[str, str]]
) -> Callable[[str, str], Sequence[PathReport]]:
    """Up and down reports by (group, path): one walk of the whole table, or, when few paths
    are wanted, a lookup per host for each of them, whichever touches fewer entries."""
    if len(keys) * len(health) >= sum(len(h) for h in health.values()):
        by_path = reports_by_path(health)
        return lambda g, p: by_path.get((g, p), ())
    wanted = {
        key: [r for host in health.values() if (r := host.get(key)) is not None and r.state in _KNOWN]
        for key in keys
    }
    return lambda g, p: wanted.get((g, p), ())


def evaluate(
    snap: Snapshot, memory: Memory, now_ms: float
) -> tuple[list[Proposal], Memory, list[GroupStatus]]:
    """The proposals, the next memory and every group's status.

    With ``snap.health_versions`` a group whose last evaluation was quiet (no proposal,
    nothing scheduled) and whose inputs are unchanged gets that status back without being
    judged again: its outcome and its memory would be the same, whatever the clock says
    (only a proposal or a dwell or hold being waited out depends on the time).
    """
    w = _Work(
        dict(memory.last_auto_ms),
        dict(memory.proposed),
        dict(memory.seen),
        dict(memory.preferred_healthy_since_ms),
    )
    versions = snap.health_versions
    names = sorted(snap.groups)
    known: dict[str, tuple[_Inputs, GroupStatus]] = {}
    if versions is not None:
        for n in names:
            was = memory.quiet.get(n)
            if was is not None and _unchanged(was[0], snap, n, versions):
                known[n] = was
    todo = [n for n in names if n not in known]
    reports = _reports_for(snap.health, [(n, p) for n in todo for p in snap.groups[n].path_names()])
    statuses: list[GroupStatus] = []
    quiet: dict[str, tuple[_Inputs, GroupStatus]] = {}
    for name in names:
        entry = known.get(name)
        if entry is None:
            status, is_quiet = _group(name, snap, reports, w, now_ms)
            statuses.append(status)
            if is_quiet and versions is not None:
                quiet[name] = (_inputs(snap, name, versions), status)
            continue
        quiet[name] = entry
        statuses.append(entry[1])
    new_memory = replace(
        memory,
        last_auto_ms=w.last_auto,
        proposed=w.proposed,
        seen=w.seen,
        preferred_healthy_since_ms=w.healthy_since,
        wake_at_ms=min(w.wakes) if w.wakes else None,
        quiet=quiet,
    )
    return w.proposals, new_memory, statuses
