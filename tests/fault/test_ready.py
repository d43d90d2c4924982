"""Readiness of the fault tier: no row races the venue's control service (fast, loopback)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from failover.faults.harness import FaultCluster, Topology
from failover.faults.invariants import Checker
from failover.faults.observe import Observer
from failover.faults.proxy import ProxyThread
from failover.procs import free_port
from failover.venue.config import GatewayConfig, VenueConfig
from failover.venue.server import Venue


async def test_wait_ready_awaits_the_venue_control_service() -> None:
    # The venue opens its control port a moment after the sidecars are ready (no hosts here):
    # the first row's fault injection used to meet "connection refused".
    control = f"127.0.0.1:{free_port()}"
    cluster = cast(FaultCluster, SimpleNamespace(topo=SimpleNamespace(hosts=[]), venue_control=control))
    obs = Observer(cluster, Checker())
    venue = Venue(
        VenueConfig(gateways=[GatewayConfig(name="primary", listen="127.0.0.1:0")], control_listen=control)
    )

    async def start_late() -> None:
        await asyncio.sleep(0.3)  # noqa: ASYNC110 - the delay is the point
        await venue.start()

    starter = asyncio.create_task(start_late())
    try:
        await obs.wait_ready(timeout=10)
        assert await obs.venue_counters() is not None, "a row now would meet connection refused"
    finally:
        await starter
        await obs.stop()
        await venue.stop()


def test_cluster_start_returns_once_the_venue_gateways_accept(tmp_path: Path) -> None:
    # Sidecars started before the venue listened met "connection refused" on both paths;
    # a leader that heard one host's refusals and another's backup up moved the group
    # to the backup before any fault (a chaos soak then waited for the primary in vain).
    topo = Topology(hosts=(), replicas=(), etcd_members=1)
    with ProxyThread() as proxy:
        cluster = FaultCluster(topo, proxy, workdir=tmp_path)
        try:
            cluster.start()
            for address in cluster.gateways.values():
                host, port = address.rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=1):
                    pass  # refused here before: the venue was still importing
        finally:
            cluster.stop()
