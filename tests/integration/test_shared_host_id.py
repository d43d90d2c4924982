"""Two sidecar processes streaming with one host id are named (replica log and gauge,
`failover sidecars`); a reconnect or a restart is not.

Found from outside: two sidecars given the same host_id (own sockets and state files)
logged on to the venue in each other's slot, ~500 logons each and 486 flips in 20 s,
and nothing said so: `failover sidecars` showed one healthy h1.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, wait_for
from tests.procs import cli
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"
UP, DOWN = pb.PATH_STATE_UP, pb.PATH_STATE_DOWN


def _states(r) -> list[int]:  # type: ignore[no-untyped-def]
    """The primary's state per session of h1 at the replica, oldest session first."""
    return [
        s.health[(G, "primary")].state if (G, "primary") in s.health else -1
        for s in sorted(r.hub.sessions.values(), key=lambda s: s.sid)
    ]


async def _snapshot(c: SyncClient) -> None:
    await c.wait(lambda: bool(c.snapshots), 10, "the snapshot")


async def test_two_processes_on_one_host_id_are_named_and_a_restart_is_not(
    etcd_cluster, prefix, caplog
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    clients: list[SyncClient] = []
    try:
        await rs.start_all()
        (r,) = rs.running()
        address = rs.address(0)
        # A restart: the old process's stream stays open (its host is cut off) but silent.
        old = SyncClient("h1", [G], instance="aaaa", auto_ack=False)
        clients.append(old)
        await old.connect(address)
        await _snapshot(old)
        old.report({(G, "primary"): UP})
        await wait_for(lambda: _states(r) == [UP], 5, "the old process's last report")
        new = SyncClient("h1", [G], instance="bbbb")
        clients.append(new)
        await new.connect(address)
        await _snapshot(new)
        for state in (DOWN, UP, DOWN):
            new.report({(G, "primary"): state})
        await wait_for(lambda: _states(r) == [UP, DOWN], 5, "every report landed")
        assert r.hub.shared_hosts == {}
        # A second process that keeps talking too.
        caplog.set_level(logging.WARNING, logger="coordinator.sync_service")
        old.report({(G, "primary"): DOWN})
        await wait_for(lambda: "h1" in r.hub.shared_hosts, 5, "the shared host id named")
        # The newer process keeps talking too: its last message is then well after its
        # stream opened, also in the CLI's view, which compares "ms ago" figures rounded
        # apart (its first reports came within a millisecond of its hello).
        await asyncio.sleep(0.01)  # noqa: ASYNC110 - a gap on the clock, not a wait for an event
        new.report({(G, "primary"): UP})
        await wait_for(lambda: _states(r) == [DOWN, UP], 5, "the newer process's report")
        assert r.hub.shared_hosts["h1"] == ["aaaa", "bbbb"]
        assert any(
            "host id h1 is used by 2 sidecar processes at once (instances aaaa, bbbb" in m
            for m in caplog.messages
        ), caplog.messages
        out = await asyncio.to_thread(cli, "sidecars", "-c", address, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["shared_host_ids"] == {"h1": ["aaaa", "bbbb"]}
        out = await asyncio.to_thread(cli, "sidecars", "-c", address)
        assert "host id h1 is used by 2 sidecar processes at once (instances aaaa, bbbb)" in " ".join(
            out.stdout.split()
        ), out.stdout
        # One of them stops: named no more.
        await old.close()
        clients.remove(old)
        await wait_for(lambda: "h1" not in r.hub.shared_hosts, 5, "the shared host id cleared")
        out = await asyncio.to_thread(cli, "sidecars", "-c", address, "--json")
        assert json.loads(out.stdout)["shared_host_ids"] == {}
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()


async def test_a_reconnect_with_the_same_instance_is_one_process(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    clients: list[SyncClient] = []
    try:
        await rs.start_all()
        (r,) = rs.running()
        for _ in range(2):
            c = SyncClient("h1", [G], instance="aaaa")
            clients.append(c)
            await c.connect(rs.address(0))
            await _snapshot(c)
        for c in clients:
            c.report({(G, "primary"): UP})
            c.report({(G, "primary"): DOWN})
        await wait_for(lambda: _states(r) == [DOWN, DOWN], 5, "every report landed")
        assert r.hub.shared_hosts == {}
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()
