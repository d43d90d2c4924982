"""A sidecar holding an epoch beyond the group's latest decision has not applied it.

Found from outside: after an etcd restore, sidecars hold epochs the restored cluster never
reached and ignore its new decisions (they order before what they hold), yet
``failover sync`` counted them as having applied it ("3 of 3 sidecars applied it", exit 0,
``"in_sync": true``). They are listed apart, as ahead of the cluster, and keep the
command from exiting 0, like hosts behind.

The counting is pure (:mod:`failover.commands.fleet`); the command runs as a process
against a loopback gRPC server answering ``GetStatus`` with a fixed fleet.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from failover.commands import fleet
from failover.model.spec import Epoch
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.procs import cli

G = "cme-orders"


def _status(latest: tuple[int, int], acked: dict[str, tuple[int, int] | None]) -> apb.ClusterStatus:
    """One reachable replica, group ``G`` decided at ``latest``, a sidecar per entry of
    ``acked`` (None: subscribed, never acknowledged)."""
    st = apb.ClusterStatus(era=latest[0])
    gs = st.groups.add()
    gs.definition.name = G
    gs.decision.group = G
    gs.decision.paths.extend(["primary", "backup"])
    gs.decision.epoch.era, gs.decision.epoch.revision = latest
    rep = st.replicas.add(replica_id="c1", address="127.0.0.1:7001", reachable=True)
    for host, epoch in acked.items():
        sc = rep.sidecars.add(host_id=host, site="default", groups=[G])
        if epoch is not None:
            sc.acked[G].era, sc.acked[G].revision = epoch
    return st


def _report(latest: tuple[int, int], acked: dict[str, tuple[int, int] | None]) -> fleet.SyncReport:
    st = _status(latest, acked)
    return fleet.sync_report(st, fleet.merge_pages([st]), G)


def test_a_host_beyond_the_latest_epoch_is_ahead_not_applied() -> None:
    rep = _report((0, 21), {"h1": (0, 22), "h2": (0, 21), "h3": (0, 20), "h4": None})
    assert rep.applied == ["h2"], rep
    assert not rep.in_sync, rep
    assert rep.ahead == [("h1", Epoch(0, 22))]
    assert rep.behind == [("h3", Epoch(0, 20)), ("h4", None)]
    js = rep.to_json()
    assert js["in_sync"] is False
    assert js["ahead"] == [{"host_id": "h1", "acked": {"era": 0, "revision": 22}}]
    assert [b["host_id"] for b in js["behind"]] == ["h3", "h4"]


def test_hosts_all_ahead_are_not_in_sync() -> None:
    """The tester's case: every host holds epochs of the lost history."""
    rep = _report((0, 21), {"h1": (0, 30), "h2": (0, 30), "h3": (0, 22)})
    assert rep.applied == [] and rep.behind == [] and not rep.in_sync
    assert [h for h, _ in rep.ahead] == ["h1", "h2", "h3"]


def test_a_later_era_is_ahead_of_any_revision_of_an_earlier_one() -> None:
    rep = _report((0, 500), {"h1": (1, 3), "h2": (0, 500)})
    assert rep.ahead == [("h1", Epoch(1, 3))] and rep.applied == ["h2"]


def test_sidecars_and_watch_do_not_call_a_host_ahead_in_sync() -> None:
    st = _status((0, 21), {"h1": (0, 22), "h2": (0, 21)})
    hosts = fleet.merge_pages([st])
    rows = {r["host_id"]: r["groups"][G] for r in fleet.host_rows(st, hosts, G)}
    assert rows["h1"]["in_sync"] is False and rows["h1"]["ahead"] is True
    assert rows["h2"]["in_sync"] is True and rows["h2"]["ahead"] is False
    state = fleet.watch_state(st, hosts, G)
    assert state["groups"][G]["applied"] == 1 and state["groups"][G]["ahead"] == ["h1"]
    assert state["hosts"]["h1"]["routes"][G]["in_sync"] is False


class _Admin(admin_pb2_grpc.AdminServicer):
    def __init__(self, st: apb.ClusterStatus) -> None:
        self.st = st

    def GetStatus(self, request: apb.GetStatusRequest, context: Any) -> apb.ClusterStatus:  # noqa: N802
        return self.st


@contextlib.contextmanager
def _serving(st: apb.ClusterStatus) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    admin_pb2_grpc.add_AdminServicer_to_server(_Admin(st), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_sync_names_hosts_ahead_and_exits_1() -> None:
    """The command's report, its JSON and its --wait timeout, all naming the host ahead."""
    st = _status((0, 21), {"h1": (0, 22), "h2": (0, 21), "h3": (0, 21)})
    with _serving(st) as addr:
        r = cli("sync", G, "-c", addr)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "latest epoch 0:21; 2 of 3 sidecars applied it" in r.stdout, r.stdout
        assert "ahead of the cluster: h1 (holds 0:22)" in r.stdout and "era bump" in r.stdout, r.stdout

        r = cli("sync", G, "--json", "-c", addr)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        rep = json.loads(r.stdout)
        assert rep["in_sync"] is False and rep["behind"] == [] and sorted(rep["applied"]) == ["h2", "h3"]
        assert rep["ahead"] == [{"host_id": "h1", "acked": {"era": 0, "revision": 22}}]

        r = cli("sync", G, "--wait", "--timeout", "0.5", "-c", addr)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: timed out after 0.5 s: "), r.stderr
        assert "1 sidecar(s) ahead of cme-orders epoch 0:21: h1" in err[0], err[0]

        r = cli("sidecars", "--group", G, "-c", addr, env={"COLUMNS": "200"})
        assert r.returncode == 0, r.stderr
        assert "0:22 (ahead)" in r.stdout and "(behind)" not in r.stdout, r.stdout


def test_sync_with_every_host_at_the_latest_epoch_still_exits_0() -> None:
    st = _status((0, 21), {"h1": (0, 21), "h2": (0, 21)})
    with _serving(st) as addr:
        r = cli("sync", G, "-c", addr)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip() == "cme-orders: latest epoch 0:21; 2 of 2 sidecars applied it", r.stdout


def test_sync_while_every_replica_is_stale_is_not_in_sync() -> None:
    """Found from outside: with etcd's quorum lost, sidecars leave the (stale) replicas and
    `sync` printed `0 of 0 sidecars applied it`, exit 0, `"in_sync": true`."""
    st = _status((0, 63), {})
    st.replicas[0].stale, st.replicas[0].stale_reason = True, "etcd unreachable for 4.1 s"
    rep = fleet.sync_report(st, fleet.merge_pages([st]), G)
    assert not rep.in_sync and "etcd unreachable" in rep.all_stale
    with _serving(st) as addr:
        r = cli("sync", G, "-c", addr)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "0 of 0 sidecars applied it; every replica that answered is stale" in r.stdout, r.stdout


def test_sync_wait_does_not_call_no_sidecar_at_all_converged() -> None:
    """Found from outside: right after a quorum loss healed, the replicas were fresh but no
    sidecar had reconnected yet, and `sync --wait` exited 0 at its first poll with `0 of 0
    sidecars applied it` (0.5 s later: 1 of 1, while 2 sidecars exist). Waiting for the fleet
    to converge needs a fleet: with no sidecar counted it keeps waiting, and says so when its
    time is up. Without --wait the answer stays as documented (0 of 0, exit 0)."""
    st = _status((0, 63), {})
    with _serving(st) as addr:
        r = cli("sync", G, "-c", addr, "--wait", "--timeout", "1")
        plain = cli("sync", G, "-c", addr)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "no sidecar" in r.stderr + r.stdout, (r.stdout, r.stderr)
    assert plain.returncode == 0, (plain.returncode, plain.stdout, plain.stderr)
