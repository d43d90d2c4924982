"""The etcd adapter reports each request with etcd's op name and a bounded outcome.

A real etcd for the answered requests (reads, a transaction whose compare fails,
a lease grant and its keepalive round trips); a port nobody listens on for the
failed ones.
"""

from __future__ import annotations

import asyncio

import pytest

from coordinator.store.errors import StoreError
from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import Compare, Put
from failover.procs import free_port

pytestmark = pytest.mark.cluster

Seen = list[tuple[str, str, float]]


async def test_answered_requests_are_ok_with_their_op(etcd_cluster, prefix) -> None:
    seen: Seen = []
    renewed = asyncio.Event()

    def on_request(op: str, outcome: str, seconds: float) -> None:
        seen.append((op, outcome, seconds))
        if op == "lease_keepalive":
            renewed.set()

    store = EtcdStore(etcd_cluster.endpoints, on_request=on_request)
    try:
        await store.put(prefix + "a", b"1")
        await store.get(prefix + "a")
        await store.get_prefix(prefix)
        res = await store.txn([Compare.absent(prefix + "a")], [Put(prefix + "a", b"2")])
        assert not res.succeeded  # etcd answered: the compare failed, the request did not
        lease = await store.grant(2)
        async with store.keep_alive(lease):
            await asyncio.wait_for(renewed.wait(), 10)
        await store.revoke(lease.id)
    finally:
        await store.close()
    ops = {(op, outcome) for op, outcome, _ in seen}
    assert {
        ("put", "ok"),
        ("range", "ok"),
        ("txn", "ok"),
        ("lease_grant", "ok"),
        ("lease_keepalive", "ok"),
        ("lease_revoke", "ok"),
    } <= ops, ops
    assert all(0 <= s < 5 for _, _, s in seen), seen


async def test_a_request_nobody_answers_is_recorded_with_its_failure() -> None:
    seen: Seen = []
    store = EtcdStore(
        [f"127.0.0.1:{free_port()}"], rpc_timeout_s=0.3, rpc_attempts=2, on_request=lambda *s: seen.append(s)
    )
    try:
        with pytest.raises(StoreError):
            await store.get("/nothing")
    finally:
        await store.close()
    assert seen and all(op == "range" for op, _, _ in seen), seen
    assert {outcome for _, outcome, _ in seen} <= {"unavailable", "timeout"}, seen
