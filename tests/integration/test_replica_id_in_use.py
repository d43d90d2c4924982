"""A second replica started with a replica_id a running replica uses is refused at start.

Found from outside: two replicas given the same `replica_id` both started; the second
overwrote the first's `members/` key (its address), so peers, forwards and `status`
reached one of them under the other's name, and nothing said so.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from coordinator.replica import Replica
from coordinator.store.etcd_store import EtcdStore
from failover.config_source import ConfigError
from failover.procs import free_port
from tests.harness import ReplicaSet, config, wait_for

pytestmark = pytest.mark.cluster


async def test_a_replica_id_a_running_replica_uses_is_refused_and_its_key_kept(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    try:
        await rs.start_all()
        (first,) = rs.running()
        await wait_for(lambda: "c1" in first.view.members, 10, "c1 registered")
        twin = Replica(config("c1", etcd_cluster.endpoints, prefix))
        with pytest.raises(
            ConfigError, match=r"replica_id 'c1' is in use by the running replica at 127\.0\.0\.1:"
        ):
            async with asyncio.timeout(20):
                await twin.run()
        assert first.view.members["c1"].address == rs.address(0)  # not overwritten
    finally:
        await rs.stop_all()


async def test_a_key_left_by_a_crashed_replica_is_not_a_replica_in_use(etcd_cluster, prefix) -> None:
    """A killed replica's key stays until its lease expires, naming an address where
    nobody answers now (or another replica does): a restart on another port starts."""
    store = EtcdStore(etcd_cluster.endpoints)
    for i, address in enumerate((f"127.0.0.1:{free_port()}", None)):
        rs = ReplicaSet(etcd_cluster.endpoints, f"{prefix}{i}/", n=2)
        try:
            if address is None:  # the address c2 serves on: it answers, but as c2
                await rs.start(1)
                address = rs.address(1)
            await store.put(f"{prefix}{i}/members/c1", json.dumps({"id": "c1", "address": address}).encode())
            again = await rs.start(0)
            await wait_for(
                lambda again=again, rs=rs: (
                    (m := again.view.members.get("c1")) is not None and m.address == rs.address(0)
                ),
                10,
                "c1 registered at its own address",
            )
        finally:
            await rs.stop_all()
    await store.close()
