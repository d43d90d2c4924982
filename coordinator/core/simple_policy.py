"""The placeholder leader policy: majority of reporting hosts. Pure.

When a majority of the hosts reporting on the decided active path report it
down, move the group to the highest-priority path that a majority of the
hosts reporting on it report up. Missing reports are unknown, never down.
At most one automatic decision per group per ``min_dwell_ms``; halted,
paused and pinned groups never move automatically.
"""

from __future__ import annotations

from collections.abc import Mapping

from coordinator.core.health import HealthTable, State
from coordinator.core.model import ControlsSpec, DecisionRecord, GroupSpec
from coordinator.core.reconcile import Proposal


def _majority(count: int, of: int) -> bool:
    return of > 0 and count * 2 > of


def evidence(table: HealthTable, group: str, path: str) -> list[str]:
    return sorted(
        f"{host}:{path}={r.state.value}" + (f"/{r.cause}" if r.cause else "")
        for host, r in table.reports(group, path).items()
    )


def propose(
    groups: Mapping[str, GroupSpec],
    controls: Mapping[str, ControlsSpec],
    routes: Mapping[str, DecisionRecord],
    table: HealthTable,
    *,
    now_ms: float,
    last_auto_ms: Mapping[str, float],
) -> list[Proposal]:
    out: list[Proposal] = []
    for name, spec in sorted(groups.items()):
        route = routes.get(name)
        ctl = controls.get(name) or ControlsSpec()
        if route is None or not route.paths or ctl.halted or ctl.paused or ctl.pinned:
            continue
        last = last_auto_ms.get(name)
        if last is not None and now_ms - last < spec.policy.min_dwell_ms:
            continue
        active = route.paths[0]
        reports = table.reports(name, active)
        down = [h for h, r in reports.items() if r.state is State.DOWN]
        if not _majority(len(down), len(reports)):
            continue
        drained = set(ctl.drained)
        healthy: list[str] = []
        for p in spec.path_names():
            if p == active or p in drained:
                continue
            rs = table.reports(name, p)
            if _majority(sum(1 for r in rs.values() if r.state is State.UP), len(rs)):
                healthy.append(p)
        if not healthy:
            continue  # degraded: keep the order; hosts use whatever is healthy locally
        target = healthy[0]
        rest = [p for p in spec.path_names() if p not in drained and p not in (target, active)]
        rest.sort(key=lambda p: p not in healthy)  # healthy standbys first, priority kept within
        order = [target, *rest, active]
        out.append(
            Proposal(
                name,
                order,
                f"{active} down on {len(down)} of {len(reports)} reporting hosts: moving to {target}",
                "health",
                evidence=[*evidence(table, name, active), *evidence(table, name, target)],
            )
        )
    return out
