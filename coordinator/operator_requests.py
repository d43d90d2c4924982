"""Operator requests the leader executes: switch, and controls (drain, pin, pause, halt).

Run inside the leader's decision loop, so they are serialised with every
automatic decision. Guard rails use the leader's health table: a switch to a
path no host reports up, a drain of the last path healthy for the group,
or a drain of the pinned path, is refused unless forced (a forced drain of
the pinned path removes the pin: drain wins, see ``core.controls``).
Controls are written with a fenced transaction (leader token + the controls'
mod revision) and recorded with the operator and reason; the decision they
cause carries both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Protocol

from coordinator.commit import Committed, Leadership, StaleInputs, fence
from coordinator.core.reconcile import standby_order
from coordinator.keys import Keys
from coordinator.store.port import Store
from coordinator.store.types import Compare, Put
from coordinator.view import ClusterView
from failover.model.spec import ControlsSpec, Stage, TriggerSpec


class RequestError(Exception):
    """An operator request that cannot be done; the message names the bad input."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "not_found", "invalid", "failed_precondition", "unavailable", "unknown"


class HealthGuard(Protocol):
    def path_has_up_report(self, group: str, path: str) -> bool: ...

    def outage(self) -> str | None:
        """Why this replica cannot read etcd now (None: it can)."""
        ...

    def healthy_paths(self, group: str) -> list[str] | None: ...


@dataclass
class OperatorRequest:
    group: str
    reason: str
    operator: str
    force: bool = False
    path: str = ""
    action: str = "switch"  # switch, drain, undrain, pin, unpin, pause, resume, halt
    received_ns: int = field(default_factory=time.monotonic_ns)
    # W3C (traceparent, tracestate) of the operator command: its decision joins that trace.
    trace: tuple[str, str] = ("", "")
    # Shared by every copy of the request that replicas forward ("": none; tests).
    request_id: str = ""
    # Copies of this request that reached this leader while it was queued or running:
    # answered with its outcome, never run themselves.
    copies: list[OperatorRequest] = field(default_factory=list)
    # Set when its write was sent to etcd: from then on a failure leaves its outcome unknown
    # (the write may still apply), and the caller must be told so, not "retry".
    writing: bool = False
    future: asyncio.Future[tuple[str, Committed | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


ACTIONS_WITH_PATH = {"switch", "drain", "undrain", "pin"}


def validate(view: ClusterView, req: OperatorRequest) -> list[str]:
    g = view.groups.get(req.group)
    if g is None:
        raise RequestError("not_found", f"group: unknown group {req.group!r}")
    names = g.value.path_names()
    if req.action in ACTIONS_WITH_PATH and req.path not in names:
        raise RequestError(
            "not_found", f"path: unknown path {req.path!r} in group {req.group!r} (paths: {', '.join(names)})"
        )
    return names


def _refused_by_health(guard: HealthGuard, message: str) -> RequestError:
    """A guard rail's refusal, unless etcd is out of reach: reports count only since the
    latest outage began, so in one every rail fails, and neither the rail nor ``--force``
    is what the operator must act on (nothing can commit until etcd answers)."""
    why = guard.outage()
    if why is not None:
        return RequestError(
            "unavailable", f"etcd out of reach of the leader ({why}); nothing commits until it answers"
        )
    return RequestError("failed_precondition", message)


def check_switch(view: ClusterView, guard: HealthGuard | None, req: OperatorRequest) -> list[str]:
    """The order a switch commits, after the guard rails."""
    g = view.groups[req.group].value
    c = view.controls.get(req.group)
    ctl = c.value if c else ControlsSpec()
    if ctl.halted:
        raise RequestError(
            "failed_precondition", f"group: {req.group!r} is halted; `failover resume` it first"
        )
    if ctl.pinned and ctl.pinned != req.path:
        raise RequestError(
            "failed_precondition",
            f"group: {req.group!r} is pinned to {ctl.pinned!r}; `failover unpin` it first",
        )
    if req.path in ctl.drained and not req.force:
        raise RequestError("failed_precondition", f"path: {req.path!r} is drained; undrain it or use --force")
    if guard is not None and not req.force and not guard.path_has_up_report(req.group, req.path):
        raise _refused_by_health(
            guard,
            f"path: no host reports {req.path!r} up in group {req.group!r}; use --force to switch anyway",
        )
    return standby_order(g, req.path, ctl)


def new_controls(view: ClusterView, guard: HealthGuard | None, req: OperatorRequest) -> ControlsSpec:
    c = view.controls.get(req.group)
    cur = c.value if c else ControlsSpec()
    drained = set(cur.drained)
    update: dict[str, object] = {"reason": req.reason, "operator": req.operator}
    a = req.action
    if a == "drain":
        if cur.pinned == req.path:
            if not req.force:
                raise RequestError(
                    "failed_precondition",
                    f"path: {req.path!r} is pinned in group {req.group!r}; `failover unpin` it first, "
                    "or use --force to drain it and remove the pin",
                )
            update["pinned"] = None  # drain wins (core.controls); say so in the controls too
        drained.add(req.path)
        names = view.groups[req.group].value.path_names()
        healthy = guard.healthy_paths(req.group) if guard is not None else None
        left = [p for p in (healthy if healthy is not None else names) if p not in drained]
        if not left and not req.force:
            what = "path healthy for the group" if healthy is not None else "path"
            message = (
                f"path: draining {req.path!r} leaves group {req.group!r} no {what}; "
                "use --force to drain anyway"
            )
            if guard is not None and healthy is not None and set(names) - drained:
                raise _refused_by_health(guard, message)  # health left no path, not the drains
            raise RequestError("failed_precondition", message)
    elif a == "undrain":
        drained.discard(req.path)
    elif a == "pin":
        if req.path in drained:
            raise RequestError("failed_precondition", f"path: {req.path!r} is drained; undrain it first")
        update["pinned"] = req.path
    elif a == "unpin":
        update["pinned"] = None
    elif a == "pause":
        update["paused"] = True
    elif a == "resume":
        update["paused"] = False
        update["halted"] = False
    elif a == "halt":
        update["halted"] = True
    else:
        raise RequestError("invalid", f"action: unknown action {a!r}")
    update["drained"] = sorted(drained)
    return cur.model_copy(update=update)


async def write_controls(
    store: Store, keys: Keys, view: ClusterView, leadership: Leadership, group: str, spec: ControlsSpec
) -> int:
    """Fenced write of a group's controls; returns the revision, raises StaleInputs on a race."""
    c = view.controls.get(group)
    key = keys.control(group)
    res = await store.txn(
        [fence(keys, leadership), Compare.mod(key, c.mod_revision if c else 0)],
        [Put(key, spec.model_dump_json().encode())],
    )
    if not res.succeeded:
        raise StaleInputs(f"controls of {group} changed concurrently (or leadership moved)")
    return res.revision


def switch_trigger(req: OperatorRequest, leadership: Leadership) -> tuple[TriggerSpec, list[Stage]]:
    queued_us = (time.monotonic_ns() - req.received_ns) // 1000
    return (
        TriggerSpec(kind="operator", operator=req.operator),
        [Stage(stage="decide", where=leadership.replica_id, duration_us=queued_us)],
    )


async def wait_view(view: ClusterView, revision: int, timeout: float = 2.0) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while view.revision < revision:
                await view.changed.wait()


def outcome_unknown(req: OperatorRequest, detail: str) -> RequestError:
    """The answer for a request whose write was sent and not confirmed."""
    return RequestError(
        "unknown",
        f"outcome unknown: {detail}; the decision may still be committed once etcd answers: "
        f"check `failover status {req.group}` before retrying",
    )
