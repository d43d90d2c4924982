"""Rich rendering of status and history for the terminal."""

from __future__ import annotations

import datetime as dt

from rich.console import Console
from rich.table import Table

from failover.v1 import admin_pb2 as apb
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb


def _epoch(e: object) -> str:
    return f"{e.era}:{e.revision}"  # type: ignore[attr-defined]


def _why_no_leader(st: apb.ClusterStatus) -> str:
    """Name the cause an operator cannot see in the replica table alone: no replica that
    answered stands for leader, so none ever will until one with ``election.campaign``
    true starts (an election in progress, by contrast, ends within the lease TTL)."""
    reached = [r for r in st.replicas if r.reachable]
    if reached and all(r.streams_only for r in reached):
        unreached = len(st.replicas) - len(reached)
        tail = f"; {unreached} not reached" if unreached else ""
        return (
            f"no leader will be elected: every replica that answered ({len(reached)}{tail}) has "
            "election.campaign: false; start one that campaigns"
        )
    return ""


def _lapsed_leader(st: apb.ClusterStatus) -> str:
    """The leader key names a replica that answered and says it does not lead: the key is
    what this replica's view last read (etcd unreachable, the term lapsed), not a leader."""
    named = [r for r in st.replicas if r.reachable and r.replica_id == st.leader.replica_id]
    if not st.leader.replica_id or not named or named[0].is_leader:
        return ""
    if any(r.is_leader for r in st.replicas if r.reachable):
        return ""  # a hand-over: the view is a moment behind
    return (
        f"{st.leader.replica_id} does not lead now: no replica that answered leads (the view "
        "above is the last one read from etcd; is etcd reachable?)"
    )


def render_status(st: apb.ClusterStatus, out: Console, *, all_hosts: bool = False) -> None:
    """Leader, replicas, groups; hosts as counts plus those needing attention, or (with
    ``all_hosts``) the page of every sidecar the request asked for."""
    leader = (
        f"{st.leader.replica_id} at {st.leader.address} (token {st.leader.fencing_token})"
        if st.leader.replica_id
        else "[red]none[/red]"
    )
    out.print(f"leader: {leader}   era: {st.era}   etcd revision: {st.revision}")
    if not st.leader.replica_id and (hint := _why_no_leader(st)):
        out.print(f"[red]{hint}[/red]")
    if lapsed := _lapsed_leader(st):
        out.print(f"[red]{lapsed}[/red]")
    if st.restore_detected:
        out.print("[red]etcd restore detected: no decisions until `failover era bump`[/red]")
    if st.alarms:
        out.print(f"[red]etcd alarms: {', '.join(st.alarms)}[/red]")
    t = Table(title="replicas")
    for col in ("replica", "address", "role", "applied rev", "lag", "fresh", "sidecars"):
        t.add_column(col)
    for r in st.replicas:
        if not r.reachable:
            t.add_row(r.replica_id, r.address, "?", "", "", f"[red]unreachable: {r.error}[/red]", "")
            continue
        fresh = "[red]STALE[/red] " + r.stale_reason if r.stale else "fresh"
        t.add_row(
            r.replica_id,
            r.address,
            "leader" if r.is_leader else "streams only" if r.streams_only else "follower",
            str(r.applied_revision),
            str(r.lag_revisions),
            fresh,
            # Every stream the replica serves; ``sidecars`` lists only the hosts asked for.
            str(max(r.sidecar_count, len(r.sidecars))),
        )
    out.print(t)
    g = Table(title="groups")
    for col in ("group", "decided order", "epoch", "reason", "controls"):
        g.add_column(col)
    for gs in st.groups:
        d = gs.decision
        order = " > ".join(d.paths) if d.group else "(none yet)"
        if d.group and not d.paths:
            order = "[red]HALTED[/red]"
        g.add_row(
            gs.definition.name, order, _epoch(d.epoch) if d.group else "", d.reason, gs.controls or "none"
        )
    out.print(g)
    decided = {  # no decision yet: no epoch to be behind or ahead of
        gs.definition.name: (list(gs.decision.paths), gs.decision.epoch if gs.decision.group else None)
        for gs in st.groups
    }
    _render_path_health(st, out)
    _render_host_counts(st, out)
    listed = [(r.replica_id, sc) for r in st.replicas for sc in r.sidecars]
    total = sum(r.sidecar_count for r in st.replicas)
    attention = sum(r.deviating_total for r in st.replicas)
    full = all_hosts
    title = "sidecars" if full else f"sidecars that deviate or lag ({attention} of {total})"
    s = Table(title=title)
    for col in ("host", "site", "replica", "group", "acked epoch", "effective", "health"):
        s.add_column(col)
    for replica_id, sc in listed:
        for group in sorted(set(sc.acked) | set(sc.effective) | {h.group for h in sc.health}):
            s.add_row(*_sidecar_row(replica_id, sc, group, decided))
    if listed or attention:
        out.print(s)
    if attention > len(listed) and not full:
        out.print(f"... {attention - len(listed)} more: `failover status --hosts` lists every sidecar")
    after = min((r.next_host for r in st.replicas if r.next_host), default="")
    if after:
        out.print(f"more sidecars follow: `failover status --hosts --after {after}`")


def _render_path_health(st: apb.ClusterStatus, out: Console) -> None:
    """What the leader's policy counts: a host whose report has not reached it is not here."""
    judged = [j for r in st.replicas if r.is_leader for j in r.path_health]
    if not judged:
        return
    t = Table(title="path health as the leader counts it")
    for col in ("group", "path", "hosts reporting", "up", "down", "slow", "verdict"):
        t.add_column(col)
    for j in judged:
        verdict = (
            "[red]failing[/red]" if j.failing else "healthy" if j.healthy else "[yellow]not healthy[/yellow]"
        )
        t.add_row(j.group, j.path, str(j.reporting), str(j.up), str(j.down), str(j.slow), verdict)
    out.print(t)


def _render_host_counts(st: apb.ClusterStatus, out: Console) -> None:
    counts: dict[tuple[str, tuple[int, int] | None, str], int] = {}
    for r in st.replicas:
        for hc in r.host_counts:
            key = (
                hc.group,
                (hc.acked.era, hc.acked.revision) if hc.HasField("acked") else None,
                hc.effective,
            )
            counts[key] = counts.get(key, 0) + hc.hosts
    if not counts:
        return
    t = Table(title="hosts per group, acked epoch and effective path")
    for col in ("group", "acked epoch", "effective", "hosts"):
        t.add_column(col)
    for (group, acked, eff), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or (0, 0), kv[0][2])
    ):
        t.add_row(group, f"{acked[0]}:{acked[1]}" if acked else "-", eff or "-", str(n))
    out.print(t)


def _sidecar_row(
    replica_id: str,
    sc: apb.SidecarStatus,
    group: str,
    decided: dict[str, tuple[list[str], pb.Epoch | None]],
) -> tuple[str, ...]:
    acked = sc.acked.get(group)
    paths, epoch = decided.get(group, ([], None))
    lag = ""
    if acked is not None and epoch is not None:
        held, latest = (acked.era, acked.revision), (epoch.era, epoch.revision)
        if held < latest:
            lag = " [yellow](behind)[/yellow]"
        elif held > latest:  # the lost history of an etcd restore: it ignores the latest decision
            lag = " [yellow](ahead)[/yellow]"
    health = " ".join(
        f"{h.path}={'up' if h.state == 1 else 'down' if h.state == 2 else '?'}"
        for h in sc.health
        if h.group == group
    )
    eff = sc.effective.get(group, "")
    if eff and paths and eff != paths[0]:
        eff = f"[yellow]{eff} (deviates)[/yellow]"
    return (
        sc.host_id,
        sc.site,
        replica_id,
        group,
        (_epoch(acked) if acked is not None else "-") + lag,
        eff,
        health,
    )


def render_history(group: str, resp: apb.HistoryResponse, out: Console) -> None:
    t = Table(title=f"history of {group} (newest first)")
    for col in ("epoch", "time (UTC)", "leader", "token", "order", "reason", "trigger"):
        t.add_column(col)
    for d in resp.decisions:
        when = dt.datetime.fromtimestamp(d.decided_at_unix_ms / 1000, dt.UTC).strftime(
            "%Y-%m-%d %H:%M:%S.%f"
        )[:-3]
        trig = d.trigger.kind
        if d.trigger.operator:
            trig += f" by {d.trigger.operator}"
        if d.trigger.evidence:
            trig += ": " + ", ".join(d.trigger.evidence)
        token = str(d.fencing_token) if d.fencing_token else "-"
        t.add_row(_epoch(d.epoch), when, d.leader_id, token, " > ".join(d.paths) or "HALT", d.reason, trig)
    out.print(t)


def render_sidecar(st: spb.SidecarLocalStatus, out: Console) -> None:
    cp = (
        f"streaming from {st.replica}"
        if st.control_plane_connected
        else "[yellow]no coordinator (static)[/yellow]"
    )
    out.print(f"sidecar {st.host_id} (site {st.site}): {cp}")
    t = Table(title="routes")
    for col in ("group", "effective", "decided order", "epoch", "reason", "paths"):
        t.add_column(col)
    for r in st.routes:
        eff = r.effective_path or "-"
        if r.halted:
            eff = "[red]HALTED[/red]"
        elif r.deviates:
            eff = f"[yellow]{eff} (deviates)[/yellow]"
        names = {1: "up", 2: "down", 3: "connecting"}
        health = " ".join(f"{h.path}={names.get(h.state, '?')}" for h in r.health)
        t.add_row(r.group, eff, " > ".join(r.decision_paths), _epoch(r.epoch), r.reason, health)
    out.print(t)
    if st.flips:
        f = Table(title="recent flips (measured here)")
        for col in ("group", "from", "to", "trigger", "cause", "detect ms", "flip ms", "first ack ms"):
            f.add_column(col)
        for x in list(st.flips)[-10:]:
            f.add_row(
                x.group,
                x.from_path,
                x.to_path,
                x.trigger,
                x.cause,
                f"{x.detect_us / 1000:.2f}",
                f"{x.flip_us / 1000:.3f}",
                f"{x.first_ack_us / 1000:.2f}" if x.first_ack_us >= 0 else "-",
            )
        out.print(f)
    out.print("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(st.counters.items())))
