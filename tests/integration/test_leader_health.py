"""The leader's health state: per term, and never trusted across an etcd outage."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from coordinator.replica import Replica
from coordinator.store.etcd_store import EtcdStore
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, code_of, switch, wait_for
from tests.procs import group
from tests.syncclient import SyncClient

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
BOTH_UP = {(G, "primary"): pb.PATH_STATE_UP, (G, "backup"): pb.PATH_STATE_UP}


def _active(r: Replica) -> str:
    route = r.view.routes.get(G)
    return route.record.paths[0] if route is not None and route.record.paths else ""


async def _connected(address: str, hosts: list[str], states: dict[tuple[str, str], int]) -> list[SyncClient]:
    clients = [SyncClient(h, [G]) for h in hosts]
    for c in clients:
        await c.connect(address)
        await c.wait(lambda c=c: bool(c.snapshots), 5, "snapshot")
        c.report(states)
    return clients


async def test_a_failback_hold_from_an_old_term_does_not_fire_in_a_new_one(etcd_cluster, prefix) -> None:
    hold_s = 3
    rs = ReplicaSet(
        etcd_cluster.endpoints,
        prefix,
        n=1,
        groups=[group(auto_failback=True, failback_hold_s=hold_s, min_dwell_ms=0)],
    )
    await rs.start_all()
    clients: list[SyncClient] = []
    store = EtcdStore(etcd_cluster.endpoints)
    try:
        r = await rs.wait_leader()
        await wait_for(lambda: _active(r) == "primary", 10, "the seeded decision")
        clients = await _connected(rs.address(0), ["h1", "h2"], BOTH_UP)
        # Off the preferred path while it is healthy: the failback hold starts now, in term 1.
        await switch(rs.address(0), G, "backup", force=False)
        await asyncio.sleep(hold_s - 1.0)  # most of the hold runs out in term 1
        terms = r.election.terms
        await store.delete(r.keys.leader)  # term 1 ends; the same replica wins term 2
        await wait_for(lambda: r.election.terms > terms and r.leader.leadership is not None, 10, "term 2")
        term2 = time.monotonic()
        await wait_for(lambda: _active(r) == "primary", hold_s + 10, "the failback in term 2")
        waited = time.monotonic() - term2
        # The hold starts again in the new term (it does not inherit term 1's clock or timer).
        assert waited >= hold_s - 0.5, f"failback {waited:.2f}s into term 2 (hold {hold_s}s)"
        assert "failback" in r.view.routes[G].record.reason
    finally:
        for c in clients:
            await c.close()
        await store.close()
        await rs.stop_all()


async def test_path_health_from_before_an_outage_does_not_pass_the_switch_guard(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        r = await rs.wait_leader()
        await wait_for(lambda: _active(r) == "primary", 10, "the seeded decision")
        clients = await _connected(rs.address(0), ["h1", "h2"], BOTH_UP)
        await switch(rs.address(0), G, "backup", force=False)  # both hosts report backup up
        # etcd unreachable for a moment (shorter than health.host_grace_s): the replica says it is
        # stale, and the sidecars leave it without their next report reaching the leader.
        probe = r.freshness.probe_once

        async def unreachable() -> None:
            return None

        r.freshness.probe_once = unreachable  # type: ignore[method-assign]
        r.freshness._set(True, "test: etcd unreachable")
        for c in clients:
            await c.close()

        def left() -> bool:
            table = r.health.current.table if r.health.current is not None else None
            return table is not None and all(
                e.gone_since_ms is not None for h, e in table.hosts.items() if h in ("h1", "h2")
            )

        await wait_for(left, 5, "the leader to see both streams end")
        r.freshness.probe_once = probe  # type: ignore[method-assign]
        await wait_for(lambda: not r.freshness.state.stale, 10, "the replica fresh again")
        # "primary up" predates the outage, from hosts that left: it must not pass the guard rail
        # (hosts still connected would vouch for their reports: the test below).
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await switch(rs.address(0), G, "primary", force=False)
        assert code_of(err.value) == grpc.StatusCode.FAILED_PRECONDITION, err.value
        assert _active(r) == "backup"
        # Fresh reports after the outage count again.
        clients = await _connected(rs.address(0), ["h1"], BOTH_UP)
        deadline = time.monotonic() + 5
        while True:
            try:
                resp = await switch(rs.address(0), G, "primary", force=False)
                break
            except grpc.aio.AioRpcError as exc:
                if code_of(exc) != grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)  # the report is on its way to the leader
        assert list(resp.decision.paths)[:1] == ["primary"]
        # The reply can come before the leader's own watch brings the write into its view.
        await wait_for(lambda: _active(r) == "primary", 5, "the switch in the leader's view")
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()


async def test_health_of_hosts_still_connected_elsewhere_passes_the_guard_after_the_leaders_outage(
    etcd_cluster, prefix
) -> None:
    """The leader alone loses etcd for a moment (its etcd member paused, seen in the fault
    tier) while every sidecar stays connected to a follower: their reports predate the
    leader's outage, but their streams never ended, and a sidecar reports on change, so
    those reports are their current state. A switch must pass the guard rail; before, it
    was refused ("no host reports the path up") until some path changed state."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        leader = await rs.wait_leader()
        follower = next(r for r in rs.running() if r is not leader)
        await wait_for(lambda: _active(leader) == "primary", 10, "the seeded decision")
        clients = await _connected(rs.address(rs.replicas.index(follower)), ["h1", "h2"], BOTH_UP)
        await wait_for(
            lambda: (
                leader.health.current is not None and leader.health.current.path_has_up_report(G, "backup")
            ),
            10,
            "the hosts' reports at the leader",
        )
        probe = leader.freshness.probe_once

        async def unreachable() -> None:
            return None

        leader.freshness.probe_once = unreachable  # type: ignore[method-assign]
        leader.freshness._set(True, "test: etcd unreachable")
        await asyncio.sleep(0.05)
        leader.freshness.probe_once = probe  # type: ignore[method-assign]
        await wait_for(lambda: not leader.freshness.state.stale, 10, "the leader fresh again")
        assert leader.leader.leadership is not None, "precondition: still the leader"
        resp = await switch(rs.address(0), G, "backup", force=False)
        assert list(resp.decision.paths)[:1] == ["backup"]
        await wait_for(lambda: _active(leader) == "backup", 5, "the switch in the leader's view")
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()
