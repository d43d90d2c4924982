"""Metrics after a real failover: in-process replicas on a real etcd, a real venue and sidecar.

Each process's MeterProvider gets an InMemoryMetricReader (and a /metrics
endpoint on port 0); the primary gateway is reset while orders flow; then every
stage histogram has a sample, the order counters match what was sent, and the
Prometheus endpoints parse with prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from failover_client.api import OutcomeKind, Sidecar
from failover_sidecar.app import SidecarApp
from failover_sidecar.config import SidecarConfig
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from coordinator.replica import Replica
from failover.telemetry import metrics as telemetry
from failover.venue.config import VenueConfig
from failover.venue.faults import FaultKind
from failover.venue.server import Venue
from tests.harness import config, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

G = "cme-orders"
WAIT_S = 20.0  # generous: 2 shared cores


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, data point) of every point of metric ``name``."""
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
    return out


def stage_counts(readers: list[InMemoryMetricReader]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in readers:
        for attrs, p in points(r, "failover.stage.duration"):
            counts[attrs["stage"]] = counts.get(attrs["stage"], 0) + p.count
    return counts


def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


@dataclass
class World:
    venue: Venue
    replicas: list[Replica]
    sidecar: SidecarApp
    coord_readers: list[InMemoryMetricReader]
    side_reader: InMemoryMetricReader
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def world(endpoints: list[str], prefix: str, tmp: Path) -> AsyncIterator[World]:
    venue = Venue(
        VenueConfig.model_validate(
            {
                "name": "v",
                "gateways": [
                    {"name": "primary", "listen": "127.0.0.1:0"},
                    {"name": "backup", "listen": "127.0.0.1:0"},
                ],
            }
        )
    )
    await venue.start()
    gw = venue.gateway_addresses
    grp = {"name": G, "paths": [{"name": p, "endpoints": {"default": gw[p]}} for p in ("primary", "backup")]}
    readers = [InMemoryMetricReader() for _ in range(3)]
    replicas = []
    for i, reader in enumerate(readers):
        cfg = config(f"c{i + 1}", endpoints, prefix, groups=[grp], metrics_listen="127.0.0.1:0")
        tel = telemetry.build("coordinator", cfg.replica_id, listen=cfg.metrics_listen, readers=[reader])
        replicas.append(Replica(cfg, tel=tel))
    sock_dir = Path(tempfile.mkdtemp(prefix="fo-obs-", dir="/tmp"))
    scfg = SidecarConfig(
        host_id="h1",
        groups=[G],
        coordinators=[r.cfg.listen for r in replicas],
        state_file=str(tmp / "h1.json"),
        strategies=["s1"],
        listen={"socket": str(sock_dir / "h1.sock")},
        data_plane={"heartbeat_interval_ms": 20},
        metrics_listen="127.0.0.1:0",
    )
    side_reader = InMemoryMetricReader()
    stel = telemetry.build("failover-sidecar", "h1", listen=scfg.metrics_listen, readers=[side_reader])
    app = SidecarApp(scfg, tel=stel)
    w = World(venue, replicas, app, readers, side_reader)
    try:
        for r in replicas:
            w.tasks.append(asyncio.create_task(r.run()))
        for r in replicas:
            async with asyncio.timeout(WAIT_S):
                await r.ready.wait()
        w.tasks.append(asyncio.create_task(app.run()))
        async with asyncio.timeout(WAIT_S):
            await app.ready.wait()
        yield w
    finally:
        for t in reversed(w.tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for tel in [r.telemetry for r in replicas] + [stel]:
            await asyncio.to_thread(tel.shutdown)
        await venue.stop()


def effective(w: World) -> str | None:
    r = w.sidecar.agent.routes.get(G)
    return r.effective if r is not None else None


def committed_reasons(w: World) -> list[str]:
    return [c.record.reason for r in w.replicas for c in r.leader.recent]


async def test_a_real_failover_leaves_a_sample_in_every_stage_and_counters_match(
    etcd_cluster, prefix, tmp_path
) -> None:
    async with world(etcd_cluster.endpoints, prefix, tmp_path) as w:
        agent = w.sidecar.agent
        await wait_for(
            lambda: (
                effective(w) == "primary"
                and all(s.is_up for s in agent.sessions.values())
                and len(agent.sessions) == 2
                and G in agent.decisions
            ),
            WAIT_S,
            "h1 on primary with both paths up",
        )
        sent = 0
        async with await Sidecar.connect(f"unix:{w.sidecar.cfg.socket_path}", "s1") as sc:
            for i in range(5):
                o = await asyncio.wait_for(sc.send(G, f'{{"n":{i}}}'), WAIT_S)
                assert o.kind == OutcomeKind.ACKED and o.path == "primary", o
                sent += 1
            await w.venue.inject_fault("primary", None, FaultKind.RESET)
            await wait_for(lambda: effective(w) == "backup", WAIT_S, "h1 flips to backup")
            # The leader follows on the host's report: a health decision moves the group.
            await wait_for(
                lambda: (
                    any("down on" in r for r in committed_reasons(w))
                    and agent.decisions[G].paths[0] == "backup"
                ),
                WAIT_S,
                "a health decision to backup, applied on h1",
            )
            for i in range(5):
                o = await asyncio.wait_for(sc.send(G, f'{{"m":{i}}}'), WAIT_S)
                assert o.kind == OutcomeKind.ACKED and o.path == "backup", o
                sent += 1
        await wait_for(
            lambda: {"push_to_ack", "apply"} <= set(stage_counts(w.coord_readers)),
            WAIT_S,
            "the replica serving h1 saw its ack",
        )
        side = stage_counts([w.side_reader])
        assert {"detect", "flip", "first_ack"} <= set(side), side
        coord = stage_counts(w.coord_readers)
        assert {"detect", "forward", "decide", "commit", "push_to_ack", "apply"} <= set(coord), coord
        health = [
            a for r in w.coord_readers for a, _ in points(r, "failover.decisions") if a["trigger"] == "health"
        ]
        assert health and health[0]["reason"] == "path_down" and health[0]["group"] == G, health
        orders = {a["outcome"]: p.value for a, p in points(w.side_reader, "failover.orders")}
        assert orders.get("submitted") == sent and orders.get("acked") == sent, orders
        flips = points(w.side_reader, "failover.flips")
        assert any(a["trigger"] == "local" and a["reason"] == "reset" for a, _ in flips), flips
        up = {a["path"]: p.value for a, p in points(w.side_reader, "failover.path.up")}
        assert up == {"primary": 0, "backup": 1}, up
        leaders = [p.value for r in w.coord_readers for _, p in points(r, "failover.leader.is_leader")]
        assert sorted(leaders) == [0, 0, 1], leaders
        sync = [
            (a["state"], p.value) for r in w.coord_readers for a, p in points(r, "failover.sidecars.sync")
        ]
        assert ("in_sync", 1) in sync and ("behind", 1) not in sync, sync

        # The same figures over HTTP, in Prometheus' text format.
        fams = await asyncio.to_thread(scrape, w.sidecar.telemetry.port)
        stages = {
            s.labels["stage"]
            for s in fams["failover_stage_duration_seconds"].samples
            if s.name.endswith("_count") and s.value > 0
        }
        assert {"detect", "flip", "first_ack"} <= stages, stages
        acked = [s.value for s in fams["failover_orders"].samples if s.labels.get("outcome") == "acked"]
        assert acked == [sent], fams["failover_orders"].samples
        buckets = [s for s in fams["failover_stage_duration_seconds"].samples if s.name.endswith("_bucket")]
        assert {"2e-05", "10.0", "+Inf"} <= {s.labels["le"] for s in buckets}
        for r in w.replicas:
            cf = await asyncio.to_thread(scrape, r.telemetry.port)
            assert "failover_sidecars_connected" in cf and "failover_leader_is_leader" in cf, sorted(cf)
