"""A leader's term ends when its leadership does, although its work loses the cancel it
was sent (real etcd).

The term ran its work and its watchdog in an ``asyncio.TaskGroup``, which cancels its
children once: when the watchdog found the term over, a work task that lost that cancel
(Python 3.11's ``wait_for``, gRPC's aio calls) kept the group, and so the term, open:
the replica never stood for leader again. The same held for the term's health timer
beside the work. Now every child of a term is cancelled until it ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from coordinator.replica import Replica
from failover.aio import cancel_until_done
from tests.harness import config, wait_for
from tests.lost_cancel import LosesCancels


async def test_a_term_whose_work_loses_its_cancel_still_ends_with_its_leadership(
    etcd_cluster, prefix, monkeypatch
) -> None:
    r = Replica(config("c1", etcd_cluster.endpoints, prefix))
    work = LosesCancels()

    async def leader_work(leadership: Any) -> None:
        await work.run()

    monkeypatch.setattr(r.leader, "run", leader_work)
    task = asyncio.create_task(r.run(), name="replica")
    try:
        await wait_for(lambda: r.election.is_leader, 10, "c1 to lead")
        terms = r.election.terms
        await r.store.delete(r.keys.leader)  # the term is over: its key is gone
        await wait_for(lambda: r.election.terms > terms, 10, "c1's next term: the first one to end")
        assert work.seen >= 2
    finally:
        ended = await cancel_until_done(task, every_s=0.1, limit_s=8.0)
        if not ended:
            await r.peers.close()
            await r.store.close()
    assert ended, "the replica did not stop"
