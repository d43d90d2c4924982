"""The fleet as the operator commands show it (pure: status messages in, plain data out).

``GetStatus`` with ``hosts`` answers one page of every replica's sidecars;
:func:`merge_pages` joins the pages into one list of (replica, sidecar), and
:func:`shared_ids` names host ids that two sidecar processes use at once.
:func:`sync_report` says which hosts have applied a group's latest epoch (and which
are behind it, or ahead of it: holding epochs the cluster no longer has),
:func:`host_rows` describes each host for ``failover sidecars``, and
:func:`watch_state` is the state ``failover watch`` compares between polls:
only what an operator acts on (decisions, effective routes, acked epochs,
path up/down), never RTTs or uptimes, which change on every poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from failover.model.instances import StreamSeen, live_instances
from failover.model.spec import Epoch
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb

Listed = list[tuple[str, apb.SidecarStatus]]  # (replica id, sidecar), sorted by host id

_STATES = {pb.PATH_STATE_UP: "up", pb.PATH_STATE_DOWN: "down", pb.PATH_STATE_CONNECTING: "connecting"}


def path_state(state: int) -> str:
    """``up``, ``down``, ``connecting`` or ``unknown`` (never reported: not treated as down)."""
    return _STATES.get(state, "unknown")  # type: ignore[call-overload, no-any-return]


def next_after(st: apb.ClusterStatus) -> str:
    """The ``hosts_after`` of the next page ("" when every replica has sent its last page).

    The smallest ``next_host`` of all replicas: a replica whose page went further
    answers part of the next page again, which :func:`merge_pages` drops.
    """
    return min((r.next_host for r in st.replicas if r.reachable and r.next_host), default="")


def merge_pages(pages: Iterable[apb.ClusterStatus]) -> Listed:
    """Every sidecar of the pages once, by host id (a later page wins: it is newer)."""
    hosts: dict[str, tuple[str, apb.SidecarStatus]] = {}
    for page in pages:
        for r in page.replicas:
            for sc in r.sidecars:
                hosts[sc.host_id] = (r.replica_id, sc)
    return [hosts[h] for h in sorted(hosts)]


def shared_ids(pages: Iterable[apb.ClusterStatus]) -> dict[str, list[str]]:
    """Host ids two sidecar processes stream with at once, across replicas (the rule:
    failover.model.instances), with their instances. Each replica's times count back from
    its own answer; the answers of one page are taken at about one moment."""
    streams: dict[str, list[StreamSeen]] = {}
    for page in pages:
        for r in page.replicas:
            for sc in r.sidecars:
                seen = StreamSeen(sc.instance, -sc.connected_for_ms, -sc.heard_ms_ago)
                streams.setdefault(sc.host_id, []).append(seen)
    return {h: live for h in sorted(streams) if (live := live_instances(streams[h]))}


def latest(st: apb.ClusterStatus) -> dict[str, Epoch | None]:
    """Each group's latest decided epoch (None: no decision yet)."""
    return {
        gs.definition.name: Epoch(gs.decision.epoch.era, gs.decision.epoch.revision)
        if gs.decision.group
        else None
        for gs in st.groups
    }


def _acked(sc: apb.SidecarStatus, group: str) -> Epoch | None:
    a = sc.acked.get(group)
    return Epoch(a.era, a.revision) if a is not None else None


def _groups(sc: apb.SidecarStatus) -> set[str]:
    """The groups a host subscribed to (in its hello), also those it has not acked or reported."""
    return set(sc.groups) | set(sc.acked) | set(sc.effective) | {h.group for h in sc.health}


Standing = Literal["applied", "behind", "ahead"]


def standing(acked: Epoch | None, want: Epoch | None) -> Standing:
    """Where a host stands against the group's latest epoch. Ahead is not applied: a host
    holding a later epoch than the cluster's latest (after an etcd restore, the lost
    history's) ignores every decision ordered before it, the latest one included, until
    ``failover era bump`` orders new decisions after it."""
    if want is None or acked == want:
        return "applied"
    return "ahead" if acked is not None and acked > want else "behind"


def _epoch_json(e: Epoch | None) -> dict[str, int] | None:
    return {"era": e.era, "revision": e.revision} if e is not None else None


@dataclass(frozen=True)
class SyncReport:
    """Hosts of one group that have applied its latest epoch, and those behind or ahead of it
    (with what they hold)."""

    group: str
    latest: Epoch | None
    applied: list[str]
    behind: list[tuple[str, Epoch | None]]
    unreachable: list[str]  # replicas that did not answer: their hosts are not counted
    ahead: list[tuple[str, Epoch]] = field(default_factory=list)  # hold epochs beyond the latest
    # Every replica that answered is stale (cannot read etcd): its view, and the latest epoch
    # it names, may be behind, and sidecars leave stale replicas, so none are counted.
    all_stale: str = ""

    @property
    def in_sync(self) -> bool:
        return not self.behind and not self.ahead and not self.all_stale

    @property
    def counted(self) -> int:
        return len(self.applied) + len(self.behind) + len(self.ahead)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "latest": _epoch_json(self.latest),
            "in_sync": self.in_sync,
            "applied": self.applied,
            "behind": [{"host_id": h, "acked": _epoch_json(a)} for h, a in self.behind],
            "ahead": [{"host_id": h, "acked": _epoch_json(a)} for h, a in self.ahead],
            "unreachable_replicas": self.unreachable,
            "all_replicas_stale": self.all_stale,
        }


def sync_report(st: apb.ClusterStatus, hosts: Listed, group: str) -> SyncReport:
    """A host is in sync once it has acknowledged (applied) the group's latest epoch; with no
    decision yet there is nothing to apply and every host is in sync (see :func:`standing`)."""
    want = latest(st).get(group)
    applied: list[str] = []
    behind: list[tuple[str, Epoch | None]] = []
    ahead: list[tuple[str, Epoch]] = []
    for _, sc in hosts:
        if group not in _groups(sc):
            continue
        acked = _acked(sc, group)
        where = standing(acked, want)
        if where == "applied":
            applied.append(sc.host_id)
        elif where == "ahead" and acked is not None:
            ahead.append((sc.host_id, acked))
        else:
            behind.append((sc.host_id, acked))
    unreachable = [r.replica_id for r in st.replicas if not r.reachable]
    answered = [r for r in st.replicas if r.reachable]
    all_stale = ""
    if answered and all(r.stale for r in answered):
        all_stale = "; ".join(f"{r.replica_id}: {r.stale_reason or 'stale'}" for r in answered)
    return SyncReport(group, want, applied, behind, unreachable, ahead, all_stale)


def host_rows(st: apb.ClusterStatus, hosts: Listed, group: str = "") -> list[dict[str, Any]]:
    """One entry per host: its replica and, per group, acked epoch, sync, effective path, paths."""
    decided = {gs.definition.name: list(gs.decision.paths) for gs in st.groups if gs.decision.group}
    want = latest(st)
    rows = []
    for replica_id, sc in hosts:
        groups: dict[str, Any] = {}
        for g in sorted(_groups(sc)):
            if group and g != group:
                continue
            acked = _acked(sc, g)
            where = standing(acked, want.get(g))
            eff = sc.effective.get(g, "")
            first = (decided.get(g) or [""])[0]
            groups[g] = {
                "acked": _epoch_json(acked),
                "latest": _epoch_json(want.get(g)),
                "in_sync": where == "applied",
                "ahead": where == "ahead",
                "effective": eff,
                "deviates": bool(eff and first and eff != first),
                "push_to_ack_us": sc.push_to_ack_us.get(g),
                "apply_us": sc.apply_us.get(g),
                "paths": [
                    {
                        "path": h.path,
                        "state": path_state(h.state),
                        "cause": pb.FailureCause.Name(h.cause).removeprefix("FAILURE_CAUSE_").lower()
                        if h.cause
                        else "",
                        "rtt_p50_us": h.rtt_p50_us,
                        "rtt_p99_us": h.rtt_p99_us,
                    }
                    for h in sorted(sc.health, key=lambda h: h.path)
                    if h.group == g
                ],
            }
        rows.append(
            {
                "host_id": sc.host_id,
                "site": sc.site,
                "version": sc.version,
                "instance": sc.instance,
                "replica": replica_id,
                "connected_for_ms": sc.connected_for_ms,
                "groups": groups,
            }
        )
    return rows


def watch_state(st: apb.ClusterStatus, hosts: Listed, group: str = "") -> dict[str, Any]:
    """What ``failover watch`` shows and compares: equal states mean nothing to report."""
    groups: dict[str, Any] = {}
    for gs in st.groups:
        name = gs.definition.name
        if group and name != group:
            continue
        d = gs.decision
        rep = sync_report(st, hosts, name)
        groups[name] = {
            "paths": list(d.paths),
            "epoch": _epoch_json(Epoch(d.epoch.era, d.epoch.revision)) if d.group else None,
            "halted": bool(d.group) and not d.paths,
            "reason": d.reason,
            "trigger": d.trigger.kind,
            "controls": gs.controls,
            "degraded": gs.degraded,
            "applied": len(rep.applied),
            "behind": sorted(h for h, _ in rep.behind),
            "ahead": sorted(h for h, _ in rep.ahead),
        }
    routes: dict[str, Any] = {}
    for row in host_rows(st, hosts, group):
        routes[row["host_id"]] = {
            "replica": row["replica"],
            "routes": {
                g: {
                    "effective": v["effective"],
                    "deviates": v["deviates"],
                    "acked": v["acked"],
                    "in_sync": v["in_sync"],
                    "ahead": v["ahead"],
                    "paths": {p["path"]: p["state"] for p in v["paths"]},
                }
                for g, v in row["groups"].items()
            },
        }
    return {
        "leader": st.leader.replica_id,
        "era": st.era,
        "unreachable_replicas": sorted(r.replica_id for r in st.replicas if not r.reachable),
        "groups": groups,
        "hosts": routes,
    }


def changed_parts(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Which top-level parts differ (all of them for the first state)."""
    if before is None:
        return sorted(after)
    return sorted(k for k in after if before.get(k) != after[k])
