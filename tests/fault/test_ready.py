"""Readiness of the fault tier: no row races the venue's control service (fast, loopback)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from failover.faults.harness import FaultCluster
from failover.faults.invariants import Checker
from failover.faults.observe import Observer
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
