"""A coordinator replica stops although one of its long-running tasks loses the cancel
it was sent (real etcd, real gRPC).

The replica ran its tasks in an ``asyncio.TaskGroup``, which cancels its children once;
``serve`` cancels the replica's main task again every 0.5 s, but those cancels reach
only the TaskGroup's body, not a child that lost the first one (Python 3.11's
``wait_for``, gRPC's aio calls): the replica kept running after SIGTERM. Now every
child is cancelled until it ends, after the hand-over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from coordinator.replica import Replica
from failover.aio import cancel_until_done
from tests.harness import config
from tests.lost_cancel import LosesCancels

# Where the task that loses its cancel runs: a child of the replica, or a child of one
# (the sync hub's health forwarder, the leader watch's peer warming), which the replica's
# own repeated cancels reach only if its parent also cancels until it ends.
WHERE: dict[str, Callable[[Replica], tuple[Any, str]]] = {
    "replica child": lambda r: (r.freshness, "run"),
    "sync hub's child": lambda r: (r.forwarder, "run"),
    "leader watch's child": lambda r: (r.leader_watch, "_warm_peers"),
}


@pytest.mark.parametrize("where", list(WHERE))
async def test_a_task_that_loses_its_first_cancel_does_not_keep_the_replica_running(
    etcd_cluster, prefix, monkeypatch, where: str
) -> None:
    r = Replica(config("c1", etcd_cluster.endpoints, prefix))
    child = LosesCancels()
    owner, name = WHERE[where](r)
    monkeypatch.setattr(owner, name, child.run)
    task = asyncio.create_task(r.run(), name="replica")
    try:
        async with asyncio.timeout(10):
            await r.ready.wait()
        # What `serve` does on SIGTERM: cancel, and cancel again until the task ends.
        ended = await cancel_until_done(task, every_s=0.1, limit_s=8.0)
        assert ended, f"the replica did not stop: its task saw {child.seen} cancel(s)"
        assert child.seen == 2
    finally:
        if not task.done():
            await r.peers.close()
            await r.store.close()
