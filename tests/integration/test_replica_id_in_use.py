"""A second replica started with a replica_id a running replica uses is refused at start.

Found from outside: two replicas given the same `replica_id` both started; the second
overwrote the first's `members/` key (its address), so peers, forwards and `status`
reached one of them under the other's name, and nothing said so.
"""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from coordinator.replica import Replica
from coordinator.store.etcd_store import EtcdStore
from failover.config_source import ConfigError
from failover.procs import free_port
from tests.harness import ReplicaSet, config, wait_for
from tests.procs import Proc, coordinator_config

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


async def test_a_replica_back_from_a_pause_yields_its_id_to_the_one_started_meanwhile(
    etcd_cluster, prefix, tmp_path
) -> None:
    """Found from outside (2 of 2): c1 SIGSTOPped for 3 s (its member key expired with its
    lease), a second `--id c1` started meanwhile (nobody answered as c1), and c1, resumed,
    registered again over it: both ran as c1 for good, silently. A replica that registers
    again after losing its lease checks the key first, as at start: the running one keeps
    the id and the one coming back exits 2."""
    store = EtcdStore(etcd_cluster.endpoints)
    key = f"{prefix}members/c1"

    async def member_address() -> str | None:
        kv, _ = await store.get(key)
        return str(json.loads(kv.value)["address"]) if kv is not None else None

    async def until(pred, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(timeout):
            while not await pred():  # noqa: ASYNC110 - etcd is polled: no event to await here
                await asyncio.sleep(0.05)

    cfg_a, addr_a = coordinator_config(tmp_path, "c1", etcd_cluster.endpoints, prefix)
    first = Proc("c1-first", ["coordinator", "--config", str(cfg_a)], tmp_path).start()
    second: Proc | None = None
    try:
        await until(lambda: _is(member_address, addr_a), "the first c1 registered")
        first.signal(signal.SIGSTOP)
        await until(lambda: _is(member_address, None), "its key gone with its lease")
        cfg_b = tmp_path / "c1b.yaml"
        addr_b = f"127.0.0.1:{free_port()}"
        cfg_b.write_text(cfg_a.read_text().replace(addr_a, addr_b))
        second = Proc("c1-second", ["coordinator", "--config", str(cfg_b)], tmp_path).start()
        await until(lambda: _is(member_address, addr_b), "the second c1 registered")
        first.signal(signal.SIGCONT)
        async with asyncio.timeout(20):
            while first.returncode is None:  # noqa: ASYNC110 - a process's exit has no event here
                await asyncio.sleep(0.05)
        assert first.returncode == 2, first.log()[-2000:]
        assert f"replica_id 'c1' is in use by the running replica at {addr_b}" in first.log(), first.log()[
            -2000:
        ]
        assert "Traceback" not in first.log(), first.log()[-2000:]
        assert second.returncode is None and await member_address() == addr_b
    finally:
        if first.returncode is None:
            first.signal(signal.SIGCONT)
        first.stop()
        if second is not None:
            second.stop()
        await store.close()


async def _is(get, want) -> bool:  # type: ignore[no-untyped-def]
    return bool(await get() == want)
