"""Shape one replica's sidecar list for an answer of bounded size (pure).

A full per-sidecar list is ~160 bytes per host and group, so at a few thousand
hosts it no longer fits the 1 MiB message cap that also bounds ``GetStatus``.
By default a replica answers with counts per (group, acked epoch, effective
path) plus the hosts that need attention: those that deviate from the
decision's first path or have not acknowledged the newest decision (at most
``MAX_LISTED``). With ``hosts`` it answers one page of the full list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from failover.model.spec import Epoch
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb

MAX_LISTED = 100
DEFAULT_PAGE = 1000

# group -> (the decision's first path, "" when halted; its epoch)
Decided = Mapping[str, tuple[str, Epoch]]


def decided_of(routes: Mapping[str, object]) -> dict[str, tuple[str, Epoch]]:
    """From a view's routes (objects with ``.record.paths`` and ``.epoch``)."""
    out: dict[str, tuple[str, Epoch]] = {}
    for g, r in routes.items():
        paths = r.record.paths  # type: ignore[attr-defined]
        out[g] = (paths[0] if paths else "", r.epoch)  # type: ignore[attr-defined]
    return out


def _only_group(sc: apb.SidecarStatus, group: str) -> apb.SidecarStatus:
    out = apb.SidecarStatus()
    out.CopyFrom(sc)
    for g in [g for g in out.acked if g != group]:
        del out.acked[g]
    for m in (out.effective, out.push_to_ack_us, out.apply_us):
        for g in [g for g in m if g != group]:
            del m[g]
    keep = [h for h in out.health if h.group == group]
    del out.health[:]
    out.health.extend(keep)
    subscribed = [g for g in out.groups if g == group]
    del out.groups[:]
    out.groups.extend(subscribed)
    return out


def groups_of(sc: apb.SidecarStatus) -> set[str]:
    """Subscribed (hello), acked, effective or reported: a host that never acked still counts."""
    return set(sc.groups) | set(sc.acked) | set(sc.effective) | {h.group for h in sc.health}


def needs_attention(sc: apb.SidecarStatus, group: str, decided: Decided) -> bool:
    """The host lags (has not acked the decision in force) or deviates from its first path."""
    if group not in decided:
        return False
    first, epoch = decided[group]
    acked = sc.acked.get(group)
    if acked is None or Epoch(acked.era, acked.revision) < epoch:
        return True
    eff = sc.effective.get(group, "")
    return bool(eff and first and eff != first)


def shape(full: apb.ReplicaStatus, request: apb.LocalStatusRequest, decided: Decided) -> apb.ReplicaStatus:
    """A copy of ``full`` with counts filled in and ``sidecars`` cut to what was asked for."""
    out = apb.ReplicaStatus()
    out.CopyFrom(full)
    del out.sidecars[:]
    out.sidecar_count = len(full.sidecars)
    counts: Counter[tuple[str, tuple[int, int] | None, str]] = Counter()
    attention: list[apb.SidecarStatus] = []
    selected: list[apb.SidecarStatus] = []
    for sc in sorted(full.sidecars, key=lambda s: s.host_id):
        groups = groups_of(sc)
        if request.group:
            if request.group not in groups:
                continue
            groups = {request.group}
        for g in groups:
            a = sc.acked.get(g)
            counts[(g, (a.era, a.revision) if a is not None else None, sc.effective.get(g, ""))] += 1
        view = _only_group(sc, request.group) if request.group else sc
        if any(needs_attention(sc, g, decided) for g in groups):
            attention.append(view)
        if request.hosts and sc.host_id > request.hosts_after:
            selected.append(view)
    for (g, acked, eff), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or (0, 0), kv[0][2])):
        hc = apb.HostCount(group=g, effective=eff, hosts=n)
        if acked is not None:
            hc.acked.CopyFrom(pb.Epoch(era=acked[0], revision=acked[1]))
        out.host_counts.append(hc)
    out.deviating_total = len(attention)
    if request.group:
        keep = [j for j in full.path_health if j.group == request.group]
        del out.path_health[:]
        out.path_health.extend(keep)
    if request.hosts:
        limit = request.host_limit or DEFAULT_PAGE
        out.sidecars.extend(selected[:limit])
        out.next_host = selected[limit - 1].host_id if len(selected) > limit else ""
    else:
        out.sidecars.extend(attention[:MAX_LISTED])
    return out
