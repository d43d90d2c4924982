"""The fence itself: superseded leaders and stale inputs change nothing."""

from __future__ import annotations

import pytest

from coordinator.commit import Committer, Inputs, Leadership, NotLeader, StaleInputs
from coordinator.store.types import Lease
from failover.model.spec import TriggerSpec
from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster


async def _snapshot(store, prefix):
    kvs, _ = await store.get_prefix(prefix)
    return {kv.key: (kv.value, kv.mod_revision) for kv in kvs if "/members/" not in kv.key}


async def test_superseded_token_and_stale_inputs_are_rejected(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        assert leader.leader.leadership is not None
        real = leader.leader.leadership
        store, view = leader.store, leader.view
        committer = Committer(store, leader.keys, view)
        before = await _snapshot(store, prefix)

        # A deposed leader: same lease, an older token.
        old = Leadership("ghost", "127.0.0.1:1", real.token - 1, Lease(real.lease.id, 2))
        with pytest.raises(NotLeader):
            await committer.commit(
                old, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), Inputs.of(view, "cme-orders")
            )

        # The same, bypassing the inline check: the transaction itself refuses.
        async def no_check(_l):
            return None

        committer.check_leader = no_check  # type: ignore[method-assign]
        with pytest.raises(NotLeader):
            await committer.commit(
                old, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), Inputs.of(view, "cme-orders")
            )
        # The real leader deciding on a stale view of the route.
        stale = Inputs.of(view, "cme-orders")
        stale = Inputs(
            stale.era, stale.era_rev, stale.group_rev, stale.control_rev, stale.route_rev - 1, stale.prev
        )
        with pytest.raises(StaleInputs):
            await committer.commit(real, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), stale)
        # ... or of the group definition.
        fresh = Inputs.of(view, "cme-orders")
        stale = Inputs(
            fresh.era, fresh.era_rev, fresh.group_rev + 1, fresh.control_rev, fresh.route_rev, fresh.prev
        )
        with pytest.raises(StaleInputs):
            await committer.commit(real, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), stale)
        assert await _snapshot(store, prefix) == before
    finally:
        await rs.stop_all()
