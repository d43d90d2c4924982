"""The sidecar's Sync stream to its replica is timed into ``rpc.client.duration``: once, when it ends.

A real replica on a real etcd and the sidecar's own ``Agent`` (its link built the way
the sidecar builds it, with the sidecar's metrics); read back with an in-memory reader.
While the stream is up and messages flow, there is no sample (never one per message);
when the replica stops, the stream's one sample carries the status it ended with.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig
from failover_sidecar.metrics import SidecarMetrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from failover.telemetry import metrics as telemetry
from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster

G = "cme-orders"
SYNC = ("failover.v1.Sync", "Stream")
OK = 0


def client_samples(reader: InMemoryMetricReader) -> dict[tuple[str, str, int], int]:
    """(rpc.service, rpc.method, rpc.grpc.status_code) -> count, of ``rpc.client.duration``."""
    out: dict[tuple[str, str, int], int] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name != "rpc.client.duration":
                    continue
                assert m.unit == "ms"
                for p in m.data.data_points:
                    a: dict[str, Any] = dict(p.attributes or {})
                    assert a["rpc.system"] == "grpc"
                    key = (str(a["rpc.service"]), str(a["rpc.method"]), int(a["rpc.grpc.status_code"]))
                    out[key] = out.get(key, 0) + p.count
    return out


def sync_count(reader: InMemoryMetricReader) -> int:
    return sum(n for k, n in client_samples(reader).items() if k[:2] == SYNC)


@pytest.mark.timeout(60)
async def test_the_sync_stream_is_one_sample_when_it_ends(etcd_cluster, prefix, tmp_path: Path) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"heartbeat_interval_ms": 50})
    await rs.start_all()
    reader = InMemoryMetricReader()
    tel = telemetry.build("failover-sidecar", "h1", readers=[reader])
    cfg = SidecarConfig(
        host_id="h1",
        groups=[G],
        coordinators=[rs.address(0)],
        state_file=str(tmp_path / "h1.json"),
        strategies=["s1"],
        listen={"socket": str(tmp_path / "h1.sock")},
    )
    agent = Agent(cfg, SidecarMetrics(tel.meter))
    link = asyncio.create_task(agent.link.run())
    try:
        await wait_for(lambda: agent.link.status.connected, 20, "the sidecar's stream")
        # Streams that ended before this one (a replica still stale when first reached is
        # left at once, seen in CI) have their sample; this one must get none while it
        # carries messages.
        moves = agent.link.status.moves
        before = sync_count(reader)
        for _ in range(5):
            last = agent.link.status.last_message_monotonic
            await wait_for(lambda last=last: agent.link.status.last_message_monotonic > last, 20, "a message")
        up = agent.link.status.connected and agent.link.status.moves == moves
        assert up, "precondition: the same stream throughout"
        assert sync_count(reader) == before, "a sample while the stream is up (one per message?)"
        assert SYNC + (OK,) not in client_samples(reader), "a stream that never ended cannot be OK"

        await rs.stop(0)
        got: dict[tuple[str, str, int], int] = {}

        def ended() -> bool:
            got.clear()
            got.update(client_samples(reader))
            return any(k[:2] == SYNC for k in got)

        await wait_for(ended, 20, "the ended stream's sample")
        codes = {k[2] for k in got if k[:2] == SYNC}
        # The replica went away under the stream: UNAVAILABLE (14), INTERNAL (13) when its
        # server reset the stream as it shut down (seen in CI), or CANCELLED (1) when the
        # link noticed first and cancelled it; then each failed reconnect is a call too.
        assert codes <= {1, 13, 14}, got
    finally:
        link.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await link
        await rs.stop_all()
        await asyncio.to_thread(tel.shutdown)
