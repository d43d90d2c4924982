"""A replica that cannot hear its sidecar ends the stream, so the sidecar moves on.

The fault tier's one-way drop (the sidecar's bytes to its replica lost, the replica's
still arriving) left the sidecar on that replica for as long as the fault lasted: it
heard heartbeats, so the stream was never silent from its side, while the replica got
no ack and pushed each later decision only after its ack timeout (5 s), and the leader
got none of that host's health. The replica now ends a stream it has not heard from
for a few heartbeat intervals (HTTP/2 keepalive pings the sidecar must answer), and
the sidecar reconnects elsewhere.

Real replicas on a real etcd, a real sidecar stream (``CoordinatorLink``) through the
fault tier's proxy with one direction dropped.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from failover_sidecar.stream import CoordinatorLink, start_order

from failover.faults.proxy import Mode, ProxyThread
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
G = "cme-orders"
HEARTBEAT_MS = 1000
# Generous: the replica ends the stream within 3 heartbeat intervals of the first silence
# (a ping after 1 interval without a byte from the sidecar, unanswered for 2); before the
# fix it never did.
LEAVE_BOUND_S = 8.0


async def test_a_replica_that_cannot_hear_its_sidecar_ends_the_stream(own_etcd, prefix) -> None:
    rs = ReplicaSet(
        own_etcd.endpoints,
        prefix,
        n=2,
        stream={"heartbeat_interval_ms": HEARTBEAT_MS, "ping_interval_ms": HEARTBEAT_MS},
    )
    proxy = ProxyThread()
    held: dict[str, tuple[int, int]] = {}

    def on_decision(d: pb.Decision, _stages: list[pb.StageTiming]) -> tuple[int, int]:
        e = (d.epoch.era, d.epoch.revision)
        if e > held.get(d.group, (0, 0)):
            held[d.group] = e
        return held[d.group]

    task: asyncio.Task[None] | None = None
    try:
        await rs.start_all()
        lead = await rs.wait_leader()
        for r in rs.running():
            await wait_for(lambda r=r: not r.freshness.state.stale, 10, f"{r.cfg.replica_id} fresh")
        # The sidecar starts on the replica that is not the leader, through the proxy.
        deaf_i = 1 if lead is rs.replicas[0] else 0
        link_name = "h1-deaf"
        via = proxy.add(link_name, rs.address(deaf_i)).address
        other = rs.address(1 - deaf_i)
        host = next(h for h in (f"h{i}" for i in range(1, 50)) if start_order([via, other], h)[0] == via)
        link = CoordinatorLink(
            host_id=host,
            site="default",
            groups=[G],
            addresses=[via, other],
            held=lambda: {g: pb.Epoch(era=e[0], revision=e[1]) for g, e in held.items()},
            on_definition=lambda g: None,
            on_decision=on_decision,
            full_health=sync_pb2.HealthReport,
            dead_after_ms=3 * HEARTBEAT_MS,
        )
        task = asyncio.create_task(link.run())
        await wait_for(
            lambda: link.status.connected and link.status.replica == via, 10, "the stream via the proxy"
        )
        await wait_for(lambda: G in held, 10, "the first decision")

        deaf = rs.replicas[deaf_i]
        assert deaf is not None
        assert any(x.host_id == host for x in deaf.hub.sessions.values())
        t0 = time.monotonic()
        proxy.set(link_name, Mode.DROP_UP)
        await wait_for(
            lambda: not any(x.host_id == host for x in deaf.hub.sessions.values()),
            LEAVE_BOUND_S,
            "the replica to end the stream of a sidecar it cannot hear",
        )
        ended = time.monotonic() - t0
        await wait_for(
            lambda: link.status.connected and link.status.replica == other,
            LEAVE_BOUND_S,
            "the sidecar on the other replica",
        )
        left = time.monotonic() - t0
        t1 = time.monotonic()
        d = (await switch(other, G, "backup")).decision
        want = (d.epoch.era, d.epoch.revision)
        await wait_for(lambda: held.get(G, (0, 0)) >= want, 3, "the next decision on the host")
        print(
            f"[deaf replica] stream ended by the replica after {ended:.2f}s, sidecar on the other "
            f"after {left:.2f}s; next decision on the host {time.monotonic() - t1:.3f}s after the switch"
        )
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        proxy.close()
        await rs.stop_all()
