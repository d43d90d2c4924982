"""A replica's fan-out waits for the operator call in progress there (coordinator/urgent.py).

Two in-process replicas on a real etcd; a sidecar's Sync stream on the follower; an
operator Switch sent to that follower, whose handler is held open after the leader's
answer. The commit reaches the follower's view, but its stream is not sent the decision
until the handler returns; then it is, and the follower's /metrics counts the wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coordinator.urgent import Urgent
from tests.harness import ReplicaSet, switch, wait_for
from tests.observability.test_rpc_etcd_scrape import scrape, stream_on_follower
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster

G = "cme-orders"
WAIT_S = 20.0  # generous: 2 shared cores
HELD_S = 1.5  # how long the handler stays open after its answer
ABSENT_S = 0.3  # the stream is watched this long for a push that must not come


async def test_the_fanout_waits_for_an_operator_call_in_progress(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2, metrics_listen="127.0.0.1:0")
    await rs.start_all()
    sidecar = SyncClient("h1", [G])
    call: asyncio.Task[Any] | None = None
    try:
        _, follower, f = await stream_on_follower(rs, sidecar)
        assert follower.admin.urgent is follower.hub.urgent
        follower.hub.urgent = follower.admin.urgent = Urgent(max_hold_s=30.0)  # no cut-off here
        answered = asyncio.Event()
        real_decide = follower.admin._decide

        async def decide_then_hold(*args: Any) -> Any:
            resp = await real_decide(*args)
            answered.set()
            await asyncio.sleep(HELD_S)  # the call stays in progress after the leader's answer
            return resp

        follower.admin._decide = decide_then_hold  # type: ignore[method-assign]
        call = asyncio.create_task(switch(rs.address(f), G, "backup"))
        await asyncio.wait_for(answered.wait(), WAIT_S)
        await wait_for(
            lambda: (r := follower.view.routes.get(G)) is not None and r.record.paths[0] == "backup",
            WAIT_S,
            "the follower's view has the commit",
        )
        with pytest.raises(AssertionError, match="timed out"):
            await sidecar.wait(lambda: sidecar.decisions[-1].paths[0] == "backup", ABSENT_S, "no push")
        assert not call.done(), "the handler ended before the stream was checked: raise HELD_S"
        resp = await asyncio.wait_for(call, WAIT_S)
        assert resp.decision.paths[0] == "backup", resp
        await sidecar.wait(lambda: sidecar.decisions[-1].paths[0] == "backup", WAIT_S, "the push after it")
        assert follower.hub.urgent.held_s > 0

        fams = await asyncio.to_thread(scrape, follower.telemetry.port)
        samples = fams["failover_fanout_gave_way_seconds"].samples
        held = [s.value for s in samples if s.name.endswith("_total")]
        assert held and held[0] > 0, samples
    finally:
        if call is not None:
            call.cancel()
            await asyncio.wait([call])
        await sidecar.close()
        await rs.stop_all()
