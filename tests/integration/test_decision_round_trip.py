"""A decision applied by every sidecar causes no work at the leader (issue 13).

Each sidecar reports its effective route after applying a decision. That report
changes no path state: the replica keeps it for status and forwards nothing, so
the leader neither receives the host again nor re-runs its policy for it.
"""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.leader_health import LeaderHealth
from coordinator.replica import Replica
from failover.v1 import admin_pb2 as apb
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
N = 20
BOTH_UP = {(G, "primary"): pb.PATH_STATE_UP, (G, "backup"): pb.PATH_STATE_UP}


class _Counted:
    """Counts what reaches one term's LeaderHealth: forwarded hosts and policy runs."""

    def __init__(self, health: LeaderHealth) -> None:
        self.hosts: list[str] = []
        self.proposes = 0
        accept, propose = health.accept, health.propose

        def counted_accept(msg: apb.HealthForward) -> None:
            self.hosts.extend(h.host_id for h in msg.hosts)
            accept(msg)

        def counted_propose() -> Any:
            self.proposes += 1
            return propose()

        health.accept = counted_accept  # type: ignore[method-assign]
        health.propose = counted_propose  # type: ignore[method-assign]


def _effective(c: SyncClient, path: str) -> None:
    """What a sidecar sends after applying a decision: its route, no path health."""
    rep = sync_pb2.HealthReport()
    rep.effective[G] = path
    c._out.put_nowait(sync_pb2.SidecarMessage(health=rep))


def _active(r: Replica) -> str:
    route = r.view.routes.get(G)
    return route.record.paths[0] if route is not None and route.record.paths else ""


async def test_a_decision_applied_by_every_sidecar_costs_the_leader_nothing(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        leader = await rs.wait_leader()
        follower = next(r for r in rs.running() if r is not leader)
        await wait_for(lambda: _active(leader) == "primary", 10, "the seeded decision")
        await wait_for(
            lambda: leader.health.current is not None and leader.health.current.ready, 10, "health"
        )
        assert leader.health.current is not None
        # The follower pushes its full state to each new term once, retrying until the
        # leader takes it: a push still pending would bring every host again later.
        await wait_for(
            lambda: follower.forwarder.full_sent_term == leader.leader.leadership.token,  # type: ignore[union-attr]
            10,
            "the follower's full state at the leader",
        )
        counted = _Counted(leader.health.current)
        for i in range(N):
            c = SyncClient(f"h{i:02d}", [G])
            clients.append(c)
            await c.connect(follower.cfg.listen)
            await c.wait(lambda c=c: bool(c.snapshots), 5, "snapshot")
            c.report(BOTH_UP)
        await wait_for(
            lambda: {f"h{i:02d}" for i in range(N)} <= set(counted.hosts), 10, "every host's health"
        )

        counted.hosts.clear()
        await switch(leader.cfg.listen, G, "backup", force=False)
        for c in clients:
            await c.wait(
                lambda c=c: bool(c.decisions) and c.decisions[-1].paths[0] == "backup", 5, "decision"
            )
            _effective(c, "backup")
        # The route is visible in the replica's status (replica-local) ...
        await wait_for(
            lambda: all(s.effective.get(G) == "backup" for s in follower.hub.sessions.values()),
            10,
            "every effective route at the replica",
        )
        proposes = counted.proposes
        # ... and a real change sent after it reaches the leader; anything forwarded before
        # (same stream order, same forwarder) would have arrived by then.
        clients[0].report({(G, "backup"): pb.PATH_STATE_DOWN}, full=False)
        await wait_for(lambda: "h00" in counted.hosts, 10, "the path change at the leader")
        assert counted.hosts == ["h00"], f"forwarded after the decision: {counted.hosts}"
        # The real change does run the policy (on the leader's next pass: waited for, bounded).
        await wait_for(lambda: counted.proposes > proposes, 10, "the policy run on the real change")
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()
