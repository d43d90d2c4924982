"""A forwarded operator call whose client gives up leaves nothing behind at the forwarder.

Found from outside: ``failover switch ... -c <follower> --timeout 1`` while the leader was
SIGSTOPped (or etcd had no quorum) made the follower log ``Task exception was never
retrieved ... DEADLINE_EXCEEDED`` with a traceback at ERROR: the handler was cancelled
with the client's call, and the forwarded call it had started ran on, unwatched, to its
own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, wait_for

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def test_an_abandoned_forward_is_settled_without_a_traceback(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2, test_hooks={"hold_before_commit_ms": 3000})
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: all(G in r.view.routes for r in rs.running()), 10, "the first decision")
        follower = rs.address(1 - rs.replicas.index(leader))
        async with admin(follower) as stub:
            call = asyncio.ensure_future(
                stub.Switch(
                    apb.SwitchRequest(group=G, path="backup", reason="t", operator="test", force=True),
                    timeout=1.5,
                )
            )
            await asyncio.sleep(0.3)  # noqa: ASYNC110 - the forward is out, the leader holds the commit
            call.cancel()  # the operator gives up (Ctrl-C) before the call's deadline
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await call  # cancelled; or the in-process replicas' loop ran the deadline first
        await asyncio.sleep(1.7)  # noqa: ASYNC110 - past the forwarded call's own deadline (1.5 s)
        gc.collect()
        await asyncio.sleep(0)
        assert [e.get("message") for e in errors] == [], errors
    finally:
        loop.set_exception_handler(None)
        await rs.stop_all()
