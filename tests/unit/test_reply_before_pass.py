"""An operator request is answered before the rest of the leader's decision pass runs.

The pass goes on after a request's commit (reconcile every group, then the health
policy): CPU that grows with the number of groups and has nothing to do with the
reply. The caller's coroutine must get the loop first, so the reply is on the wire
before that work, not after it.
"""

from __future__ import annotations

import asyncio

from coordinator.commit import Committed, Inputs, Leadership
from coordinator.core.reconcile import Proposal
from coordinator.keys import Keys
from coordinator.leader import LeaderWork
from coordinator.operator_requests import OperatorRequest
from coordinator.store.types import KV, Lease
from coordinator.view import ClusterView
from failover.model.spec import DecisionRecord, Epoch, GroupSpec, PathSpec, Stage, TriggerSpec

KEYS = Keys("/t/")
GROUP = GroupSpec(
    name="g", paths=[PathSpec(name=n, endpoints={"default": "127.0.0.1:9"}) for n in ("primary", "backup")]
)


class InstantCommitter:
    """Commits at once, as etcd would with its answer already in hand."""

    def __init__(self) -> None:
        self.revision = 100

    async def commit(
        self,
        leadership: Leadership,
        group: str,
        paths: list[str],
        reason: str,
        trigger: TriggerSpec,
        inputs: Inputs,
        stages: list[Stage] | None = None,
        trace: tuple[str, str] = ("", ""),
        request_id: str = "",
    ) -> Committed:
        self.revision += 1
        record = DecisionRecord(
            group=group,
            paths=paths,
            era=0,
            leader_id=leadership.replica_id,
            reason=reason,
            trigger=trigger,
            decided_at_unix_ms=0,
            fencing_token=leadership.token,
        )
        return Committed(record, Epoch(0, self.revision), 0)

    async def prune_history(self, leadership: Leadership, group: str, keep: int) -> int:
        return 0


async def test_the_caller_resumes_before_the_pass_runs_the_policy() -> None:
    order: list[str] = []
    policy_ran = asyncio.Event()
    view = ClusterView(KEYS)
    key = KEYS.group("g")
    view.apply({key: KV(key, GROUP.model_dump_json().encode(), 5, 5)}, {key}, 10)

    def policy(_view: ClusterView) -> list[Proposal]:
        order.append("policy")
        policy_ran.set()
        return []

    work = LeaderWork(
        view,
        InstantCommitter(),  # type: ignore[arg-type]
        history_retention=10,
        health_policy=policy,
    )
    leadership = Leadership("c1", "127.0.0.1:1", 9, Lease(id=1, ttl_s=2, requested_at=0.0))
    term = asyncio.create_task(work.run(leadership))
    try:
        async with asyncio.timeout(5):
            await policy_ran.wait()  # the term's first pass
            order.clear()
            policy_ran.clear()
            await work.submit(OperatorRequest("g", "test", "op", force=True, path="backup"))
            order.append("reply")
            await policy_ran.wait()  # the pass after the request
    finally:
        term.cancel()
        await asyncio.gather(term, return_exceptions=True)
    assert order == ["reply", "policy"], order
