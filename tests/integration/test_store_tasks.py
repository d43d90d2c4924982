"""No orphaned tasks while etcd is unreachable (each would log "never retrieved" on collection)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from tests.harness import ReplicaSet, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.xfail(
    strict=False,
    reason="one orphan remains: about 1 run in 3 a failed lease revoke during shutdown with etcd gone "
    "is logged as 'never retrieved' (the stream-task orphans of defect 12 are fixed)",
)
async def test_an_etcd_outage_leaves_no_orphaned_stream_tasks(own_etcd, prefix) -> None:
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1)
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx))
    try:
        await rs.start_all()
        r = await rs.wait_leader()
        await wait_for(lambda: not r.freshness.state.stale, 10, "a fresh replica")
        for i in range(len(own_etcd.members)):
            await asyncio.to_thread(own_etcd.stop_member, i)
        # The watch and the lease keepalive retry their streams while etcd is gone.
        for _ in range(8):
            await asyncio.sleep(0.5)
            gc.collect()
        await rs.stop_all()
        gc.collect()
        await asyncio.sleep(0.1)  # let finalizer tasks run and report
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
        await rs.stop_all()
    assert not problems, [f"{p.get('message')}: {p.get('exception')!r}" for p in problems[:5]]
