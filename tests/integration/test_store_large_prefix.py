"""A prefix larger than one gRPC message: listed whole, in pages at one revision."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.store import etcd_store
from coordinator.store.etcd_store import EtcdStore
from tests.harness import ReplicaSet

pytestmark = pytest.mark.cluster

VALUE = b"x" * 100_000  # 60 of them: 6 MB, past gRPC's 4 MiB default receive limit


async def _fill(store: EtcdStore, prefix: str, n: int = 60) -> None:
    for i in range(n):
        await store.put(f"{prefix}zz/{i:03d}", VALUE)


async def test_a_prefix_larger_than_a_grpc_message_is_listed_whole(etcd_cluster, prefix) -> None:
    store = EtcdStore(etcd_cluster.endpoints)
    try:
        await _fill(store, prefix)
        kvs, revision = await store.get_prefix(prefix)
        assert [kv.key for kv in kvs] == [f"{prefix}zz/{i:03d}" for i in range(60)]
        assert all(kv.value == VALUE for kv in kvs)
        assert revision >= max(kv.mod_revision for kv in kvs)
    finally:
        await store.delete(prefix, prefix=True)
        await store.close()


async def test_pages_read_one_revision_while_keys_change(
    etcd_cluster, prefix, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes between two pages do not show: every page is read at the first page's revision."""
    monkeypatch.setattr(etcd_store, "LIST_PAGE_KEYS", 7)
    store = EtcdStore(etcd_cluster.endpoints)
    writer = EtcdStore(etcd_cluster.endpoints)
    try:
        for i in range(50):
            await store.put(f"{prefix}k/{i:03d}", b"before")
        real_get = store._unary
        pages = 0

        async def page_then_write(op, call, **kw):  # type: ignore[no-untyped-def]
            nonlocal pages
            resp = await real_get(op, call, **kw)
            if op == "get_prefix":
                pages += 1
                await writer.put(f"{prefix}k/{pages:03d}", b"after")  # already read or not
                await writer.put(f"{prefix}k/new{pages:03d}", b"after")
            return resp

        store._unary = page_then_write  # type: ignore[method-assign]
        kvs, revision = await store.get_prefix(prefix)
        assert pages == 8  # 50 keys, 7 per page
        assert [kv.key for kv in kvs] == [f"{prefix}k/{i:03d}" for i in range(50)]
        assert {kv.value for kv in kvs} == {b"before"}
        assert all(kv.mod_revision <= revision for kv in kvs)
    finally:
        await store.delete(prefix, prefix=True)
        await writer.close()
        await store.close()


async def test_a_replica_starts_on_a_prefix_larger_than_a_grpc_message(etcd_cluster, prefix) -> None:
    store = EtcdStore(etcd_cluster.endpoints)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    try:
        await _fill(store, prefix)
        async with asyncio.timeout(30):
            await rs.start_all()  # ready once its mirror holds the listing
            await rs.wait_leader()
    finally:
        await rs.stop_all()
        await store.delete(prefix, prefix=True)
        await store.close()
