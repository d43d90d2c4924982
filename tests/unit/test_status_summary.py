"""`failover status` stays under the message cap at the largest documented fleet
(3 replicas x stream.max_streams 5000 sidecars), and still names the hosts that matter."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError
from rich.console import Console

from coordinator.status_summary import MAX_LISTED, shape
from failover.model.convert import group_spec
from failover.model.spec import Epoch
from failover.status_view import render_status
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb

CAP = 1024 * 1024  # stream.max_message_bytes default, which also bounds Admin.GetStatus
PER_REPLICA = 5000
GROUPS = ["cme-orders", "eurex-orders"]
DECIDED = {g: ("primary", Epoch(1, 100)) for g in GROUPS}


def _replica(i: int) -> apb.ReplicaStatus:
    r = apb.ReplicaStatus(replica_id=f"c{i}", address=f"127.0.0.1:700{i}", reachable=True)
    for n in range(PER_REPLICA):
        sc = r.sidecars.add(host_id=f"host-{i}-{n:05d}", site="ny4", connected_for_ms=123456)
        for g in GROUPS:
            behind = n % 1000 == 7
            sc.acked[g].CopyFrom(pb.Epoch(era=1, revision=90 if behind else 100))
            sc.effective[g] = "backup" if n % 1000 == 3 else "primary"
            sc.push_to_ack_us[g] = 812
            sc.apply_us[g] = 41
            for p in ("primary", "backup"):
                sc.health.append(pb.PathHealth(group=g, path=p, state=pb.PATH_STATE_UP))
    return r


@pytest.fixture(scope="module")
def fleet() -> list[apb.ReplicaStatus]:
    return [_replica(i) for i in (1, 2, 3)]


def _status(replicas: list[apb.ReplicaStatus]) -> apb.ClusterStatus:
    st = apb.ClusterStatus(era=1, revision=100)
    for g in GROUPS:
        gs = st.groups.add(controls="none")
        gs.definition.name = g
        gs.decision.CopyFrom(
            pb.Decision(group=g, paths=["primary", "backup"], epoch=pb.Epoch(era=1, revision=100))
        )
    st.replicas.extend(replicas)
    return st


def test_the_full_list_would_not_fit(fleet: list[apb.ReplicaStatus]) -> None:
    assert _status(fleet).ByteSize() > CAP


def test_the_default_summary_fits_and_counts_every_host(fleet: list[apb.ReplicaStatus]) -> None:
    shaped = [shape(r, apb.LocalStatusRequest(), DECIDED) for r in fleet]
    st = _status(shaped)
    assert st.ByteSize() < CAP // 10
    for r in shaped:
        assert r.sidecar_count == PER_REPLICA
        for g in GROUPS:
            assert sum(hc.hosts for hc in r.host_counts if hc.group == g) == PER_REPLICA
        # 5 hosts deviate and 5 lag per replica: each listed, nobody else
        assert r.deviating_total == 10 and len(r.sidecars) == 10
        assert {sc.host_id[-3:] for sc in r.sidecars} == {"003", "007"}
    text = _render(st)
    assert "host-1-00003" in text and "host-1-00007" in text and "(behind)" in text and "(deviates)" in text
    assert "host-1-00004" not in text
    assert "14970" in text  # healthy hosts of one group on 1:100 via primary, all replicas


def test_attention_list_is_capped(fleet: list[apb.ReplicaStatus]) -> None:
    decided = {g: ("backup", Epoch(1, 100)) for g in GROUPS}  # now almost everyone deviates
    r = shape(fleet[0], apb.LocalStatusRequest(), decided)
    assert r.deviating_total > MAX_LISTED and len(r.sidecars) == MAX_LISTED


def test_hosts_pages_and_group_filters(fleet: list[apb.ReplicaStatus]) -> None:
    req = apb.LocalStatusRequest(hosts=True, group="cme-orders", host_limit=2000)
    seen: list[str] = []
    while True:
        r = shape(fleet[0], req, DECIDED)
        assert r.ByteSize() < CAP
        assert all(set(sc.acked) == {"cme-orders"} for sc in r.sidecars)
        assert all({h.group for h in sc.health} == {"cme-orders"} for sc in r.sidecars)
        seen += [sc.host_id for sc in r.sidecars]
        if not r.next_host:
            break
        req.hosts_after = r.next_host
    assert seen == sorted(sc.host_id for sc in fleet[0].sidecars)


def _render(st: apb.ClusterStatus) -> str:
    buf = io.StringIO()
    render_status(st, Console(file=buf, width=200))
    return buf.getvalue()


def test_an_undefined_warmth_is_refused_naming_the_field() -> None:
    msg = pb.GroupDefinition(name="g", paths=[pb.Path(name="a", endpoint="127.0.0.1:1", warmth=9)])
    with pytest.raises(ValidationError) as exc:
        group_spec(msg, with_policy=False)
    assert "paths.0.warmth" in str(exc.value)
    msg.paths[0].warmth = pb.WARMTH_UNSPECIFIED
    assert group_spec(msg, with_policy=False).paths[0].warmth == "logged_on"


def test_the_leaders_path_counts_are_shown_and_cut_to_the_group_asked_for() -> None:
    leader = apb.ReplicaStatus(replica_id="c1", address="127.0.0.1:7001", reachable=True, is_leader=True)
    leader.path_health.add(group="cme-orders", path="primary", reporting=3, up=2, down=1, healthy=True)
    leader.path_health.add(group="eurex-orders", path="primary", reporting=2, down=2, failing=True)
    out = _render(_status([leader]))
    assert "path health as the leader counts it" in out
    rows = [line for line in out.splitlines() if "primary" in line and ("cme" in line or "eurex" in line)]
    assert any("cme-orders" in r and "healthy" in r for r in rows), out
    assert any("eurex-orders" in r and "failing" in r for r in rows), out
    cut = shape(leader, apb.LocalStatusRequest(group="cme-orders"), DECIDED)
    assert [(j.group, j.path, j.up, j.down) for j in cut.path_health] == [("cme-orders", "primary", 2, 1)]


def test_the_replicas_table_counts_every_stream_not_the_hosts_listed() -> None:
    """Before: the "sidecars" column showed how many hosts the shaped answer listed (only
    those that deviate or lag), so a replica streaming to healthy sidecars showed 0."""
    full = apb.ReplicaStatus(replica_id="c1", address="127.0.0.1:7001", reachable=True, is_leader=True)
    for n in range(3):
        sc = full.sidecars.add(host_id=f"h{n}", site="ny4")
        sc.acked["g"].CopyFrom(pb.Epoch(era=1, revision=5))
        sc.effective["g"] = "primary"
    shaped = shape(full, apb.LocalStatusRequest(), {"g": ("primary", Epoch(1, 5))})
    assert len(shaped.sidecars) == 0 and shaped.sidecar_count == 3
    buf = io.StringIO()
    render_status(apb.ClusterStatus(replicas=[shaped]), Console(file=buf, width=200))
    row = next(line for line in buf.getvalue().splitlines() if "127.0.0.1:7001" in line)
    assert row.rstrip(" │").split("│")[-1].strip() == "3", row


def _render(st: apb.ClusterStatus) -> str:
    buf = io.StringIO()
    render_status(st, Console(file=buf, width=200, color_system=None))
    return buf.getvalue()


@pytest.mark.parametrize(("streams_only", "named"), [((True, True), True), ((True, False), False)])
def test_no_leader_names_a_cluster_where_no_replica_campaigns(
    streams_only: tuple[bool, bool], named: bool
) -> None:
    """`leader: none` alone reads like an election in progress; with every replica that
    answered set to election.campaign: false, none ever will be, and status says so."""
    st = _status(
        [
            apb.ReplicaStatus(replica_id=f"c{i}", address=f"127.0.0.1:700{i}", reachable=True, streams_only=s)
            for i, s in enumerate(streams_only, 1)
        ]
        + [apb.ReplicaStatus(replica_id="c9", address="127.0.0.1:7009", reachable=False, error="refused")]
    )
    text = _render(st)
    assert "leader: none" in text
    assert ("election.campaign: false" in text) is named, text
    if named:
        assert "every replica that answered (2; 1 not reached)" in text, text


def test_a_leader_key_whose_replica_says_it_does_not_lead_is_called_lapsed() -> None:
    """Found from outside: during a quorum loss `status` named `leader: c1 (token 58)` at
    every poll for 30 s, while every replica said it did not lead."""
    st = apb.ClusterStatus()
    st.leader.replica_id, st.leader.address, st.leader.fencing_token = "c1", "127.0.0.1:7001", 58
    for rid in ("c1", "c2"):
        st.replicas.add(replica_id=rid, reachable=True, is_leader=False)
    assert "c1 does not lead now: no replica that answered leads" in _render(st)
    st.replicas[1].is_leader = True  # a hand-over in progress: the view is a moment behind
    assert "does not lead now" not in _render(st)
    st.replicas[1].is_leader = False
    st.replicas[0].is_leader = True
    assert "does not lead now" not in _render(st)
