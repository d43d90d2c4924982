"""After a real switch, a replica's /metrics (scraped over HTTP) has the RPC and etcd latency series.

Two in-process replicas on a real etcd, each with a Prometheus endpoint; a sidecar's
Sync stream on the follower; an operator switch sent to the follower (which passes
it to the leader over its peer channel). Parsed with prometheus_client's parser.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import ReplicaSet, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster

G = "cme-orders"
WAIT_S = 20.0  # generous: 2 shared cores


def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def counts(fams: dict[str, Any], family: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The ``_count`` samples of a histogram family, keyed by the values of ``labels``."""
    fam = fams.get(family)
    assert fam is not None, f"{family} missing; have {sorted(fams)}"
    assert fam.type == "histogram", fam.type
    out: dict[tuple[str, ...], float] = {}
    for s in fam.samples:
        if s.name.endswith("_count"):
            key = tuple(s.labels.get(k, "") for k in labels)
            out[key] = out.get(key, 0) + s.value
    return out


RPC_LABELS = ("rpc_system", "rpc_service", "rpc_method", "rpc_grpc_status_code")


async def stream_on_follower(rs: ReplicaSet, sidecar: SyncClient) -> tuple[Any, Any, int]:
    """(leader, follower, the follower's index) once ``sidecar`` streams from the follower
    and has the initial decision."""
    leader = await rs.wait_leader(WAIT_S)
    f = next(i for i, r in enumerate(rs.replicas) if r is not None and r is not leader)
    follower = rs.replicas[f]
    assert follower is not None
    await wait_for(lambda: G in leader.view.routes, WAIT_S, "the initial decision")
    await sidecar.connect(rs.address(f))
    await sidecar.wait(lambda: bool(sidecar.decisions), WAIT_S, "the initial decision")
    return leader, follower, f


async def test_rpc_and_etcd_latency_series_after_a_switch(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2, metrics_listen="127.0.0.1:0")
    await rs.start_all()
    sidecar = SyncClient("h1", [G])
    try:
        leader, follower, f = await stream_on_follower(rs, sidecar)
        resp = await switch(rs.address(f), G, "backup")
        assert resp.decision.paths[0] == "backup", resp
        await sidecar.wait(
            lambda: sidecar.decisions[-1].paths[0] == "backup", WAIT_S, "the switch pushed to h1"
        )
        await sidecar.close()  # the stream's one sample is recorded when it ends
        await wait_for(lambda: not follower.hub.sessions, WAIT_S, "the follower saw the stream end")

        fams = await asyncio.to_thread(scrape, follower.telemetry.port)
        server = counts(fams, "rpc_server_duration_milliseconds", *RPC_LABELS)
        assert server.get(("grpc", "failover.v1.Admin", "Switch", "0"), 0) >= 1, server
        sync = {k: n for k, n in server.items() if k[1:3] == ("failover.v1.Sync", "Stream")}
        assert sum(sync.values()) == 1, sync  # one per stream, with its end status
        assert set(sync) <= {("grpc", "failover.v1.Sync", "Stream", c) for c in ("0", "1")}, sync
        client = counts(fams, "rpc_client_duration_milliseconds", *RPC_LABELS)
        assert client.get(("grpc", "failover.v1.Admin", "Switch", "0"), 0) >= 1, client
        buckets = {
            s.labels["le"]
            for s in fams["rpc_server_duration_milliseconds"].samples
            if s.name.endswith("_bucket")
        }
        assert {"0.02", "10000.0", "+Inf"} <= buckets, sorted(buckets)
        assert max(float(b) for b in buckets) == float("inf") and 86_400_000.0 in {
            float(b) for b in buckets
        }, sorted(buckets)  # a stream that lives a day still lands in a bucket

        lead = await asyncio.to_thread(scrape, leader.telemetry.port)
        for name, f_ in (("follower", fams), ("leader", lead)):
            etcd = counts(f_, "failover_etcd_request_duration_seconds", "op", "outcome")
            for op in ("range", "lease_grant", "lease_keepalive"):
                assert etcd.get((op, "ok"), 0) >= 1, (name, op, etcd)
        etcd = counts(lead, "failover_etcd_request_duration_seconds", "op", "outcome")
        assert etcd.get(("txn", "ok"), 0) >= 2, etcd  # the initial decision and the switch
        lead_server = counts(lead, "rpc_server_duration_milliseconds", *RPC_LABELS)
        assert lead_server.get(("grpc", "failover.v1.Admin", "Switch", "0"), 0) >= 1, lead_server
    finally:
        await sidecar.close()
        await rs.stop_all()
