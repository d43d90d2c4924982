"""What the leader must commit regardless of health: pure, from one view snapshot.

A group without a route gets its first decision; a route from an older era is
re-committed in the current era (after an etcd restore and era bump, so every
sidecar orders it after what it holds); a route naming paths the definition no
longer has, or missing new ones, is rewritten. A route whose active path is
drained moves to the pin when one holds (see ``core.controls``), else to the
next path of its order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordinator.core.controls import effective
from failover.model.spec import ControlsSpec, DecisionRecord, GroupSpec, Stage


@dataclass(frozen=True)
class Proposal:
    group: str
    paths: list[str]
    reason: str
    kind: str = "seed"  # trigger kind
    operator: str = ""
    evidence: list[str] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    # W3C (traceparent, tracestate) of the report that drove a health proposal ("": none).
    trace: tuple[str, str] = ("", "")


def standby_order(spec: GroupSpec, active: str | None, controls: ControlsSpec | None) -> list[str]:
    """active first (when given), then every other non-drained path by priority."""
    drained = effective(controls, spec.path_names()).drained
    rest = [p for p in spec.path_names() if p != active and p not in drained]
    return ([active] if active else []) + rest


def reconcile(
    group: str,
    spec: GroupSpec,
    controls: ControlsSpec | None,
    route: DecisionRecord | None,
    era: int,
) -> Proposal | None:
    names = spec.path_names()
    ctl = effective(controls, names)
    if route is None:
        return Proposal(
            group, standby_order(spec, ctl.pinned, controls), "initial decision: paths in priority order"
        )
    op = controls.operator if controls else ""
    why = f": {controls.reason}" if controls and controls.reason else ""
    if controls is not None and controls.halted:
        if route.paths:
            return Proposal(group, [], f"halted by {op or 'operator'}{why}", "control", op)
        return None
    if not route.paths:
        # A halt that was lifted: back to priority order.
        order = standby_order(spec, ctl.pinned, controls)
        return Proposal(group, order, f"resumed by {op or 'operator'}{why}", "control", op)
    drained = ctl.drained
    active = route.paths[0] if route.paths[0] in names and route.paths[0] not in drained else ctl.pinned
    wanted = standby_order(spec, active, controls)
    # Keep the standby order the last decision chose, restricted to known paths.
    kept = [p for p in route.paths if p in wanted]
    merged = kept + [p for p in wanted if p not in kept]
    if active is not None:
        merged = [active, *(p for p in merged if p != active)]
    if merged != route.paths:
        if controls is not None and route.paths[0] in drained:
            return Proposal(
                group, merged, f"{route.paths[0]} drained by {op or 'operator'}{why}", "control", op
            )
        if controls is not None and set(route.paths) & drained:
            return Proposal(group, merged, f"drained by {op or 'operator'}{why}", "control", op)
        return Proposal(group, merged, "group definition or controls changed", "seed")
    if route.era < era:
        return Proposal(group, route.paths, f"era bumped to {era}: re-committed in the new era", "seed")
    return None
