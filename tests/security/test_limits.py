"""Per-caller limits (issue 15, item 4): one misbehaving sidecar or operator tool
cannot starve the others. Admin calls are rate-limited per identity; a host id
holds a bounded number of sidecar streams per replica. Both answer
RESOURCE_EXHAUSTED with the limit named, and are counted.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from coordinator.limits import peer_host
from failover import rpc
from failover.ratelimit import PerCaller, TokenBucket
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sync_pb2
from tests.harness import ReplicaSet, admin, wait_for
from tests.security.pki import Pki
from tests.syncclient import SyncClient

G = "cme-orders"


# --- pure ------------------------------------------------------------------------------


def test_bucket_allows_its_burst_then_its_rate() -> None:
    b = TokenBucket(rate=2.0, burst=3.0, tokens=3.0, at=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)  # half a second at 2/s: one token
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]  # refill stops at the burst


def test_one_caller_over_its_rate_does_not_touch_another() -> None:
    pc = PerCaller(rate=1.0, burst=2.0)
    assert [pc.allow("operator/loop", 0.0) for _ in range(5)] == [True, True, False, False, False]
    assert pc.allow("operator/alice", 0.0) and pc.allow("operator/alice", 0.0)
    assert pc.refused == {"operator/loop": 3}


def test_caller_table_is_bounded() -> None:
    pc = PerCaller(rate=1.0, burst=1.0, max_callers=100)
    for i in range(10_000):
        pc.allow(f"ipv4:{i}", 0.0)
        pc.allow(f"ipv4:{i}", 0.0)
    assert len(pc._buckets) <= 100 and len(pc.refused) <= 100


@pytest.mark.parametrize(
    ("peer", "host"),
    [("ipv4:127.0.0.1:5000", "127.0.0.1"), ("ipv6:[::1]:5000", "[::1]"), ("unix:/tmp/s", "unix:/tmp/s")],
)
def test_peer_host(peer: str, host: str) -> None:
    assert peer_host(peer) == host


# --- on a real replica -----------------------------------------------------------------


def _hello(host: str) -> Iterator[sync_pb2.SidecarMessage]:
    yield sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id=host, groups=[G]))


async def _first_reply(address: str, host: str) -> grpc.aio.AioRpcError | None:
    async with grpc.aio.insecure_channel(address) as ch:
        call = ch.stream_stream(
            "/failover.v1.Sync/Stream",
            request_serializer=sync_pb2.SidecarMessage.SerializeToString,
            response_deserializer=sync_pb2.ReplicaMessage.FromString,
        )(_hello(host), timeout=10)
        try:
            async for _ in call:
                call.cancel()
                return None
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


@pytest.mark.cluster
async def test_a_host_holds_at_most_max_streams_per_host(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"max_streams_per_host": 2})
    await rs.start_all()
    clients = [SyncClient("h1", [G]), SyncClient("h1", [G]), SyncClient("h2", [G])]
    try:
        leader = await rs.wait_leader()
        for c in clients[:2]:
            await c.connect(rs.address(0))
        await wait_for(lambda: len(leader.hub.sessions) == 2, 10, "two h1 streams")
        exc = await _first_reply(rs.address(0), "h1")
        assert exc is not None and exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "host h1 already holds 2 streams" in (exc.details() or "")
        assert "stream.max_streams_per_host 2" in (exc.details() or "")
        assert leader.hub.refused_host_streams == {"h1": 1}
        await clients[2].connect(rs.address(0))  # another host is not affected
        await wait_for(lambda: len(leader.hub.sessions) == 3, 10, "h2's stream")
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()


@pytest.mark.cluster
async def test_admin_rate_limit_answers_resource_exhausted(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, admin_limits={"rate_per_s": 0.01, "burst": 3})
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        async with admin(rs.address(0)) as stub:
            for _ in range(3):
                await stub.GetStatus(apb.GetStatusRequest(), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.GetStatus(apb.GetStatusRequest(), timeout=10)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "127.0.0.1 is over its Admin rate limit (0.01/s, burst 3) on replica c1" in (
            exc.value.details() or ""
        )
        assert leader.admin_limits.refused == {"127.0.0.1": 1}
    finally:
        await rs.stop_all()


@pytest.mark.cluster
async def test_with_mtls_each_identity_has_its_own_bucket(etcd_cluster, prefix, pki: Pki) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, admin_limits={"rate_per_s": 0.01, "burst": 2})
    rs.configs = [c.model_copy(update={"tls": pki.tls(f"replica-{c.replica_id}")}) for c in rs.configs]
    await rs.start_all()
    try:
        await rs.wait_leader()

        async def calls(stem: str, n: int) -> list[grpc.StatusCode]:
            out = []
            async with rpc.channel(rs.address(0), tls=pki.tls(stem)) as ch:
                stub = admin_pb2_grpc.AdminStub(ch)
                for _ in range(n):
                    try:
                        await stub.GetStatus(apb.GetStatusRequest(), timeout=10)
                        out.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as exc:
                        out.append(exc.code())
            return out

        ok, over = grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await calls("operator-alice", 4) == [ok, ok, over, over]
        assert await calls("viewer-vera", 2) == [ok, ok]  # not starved by alice's loop
    finally:
        await rs.stop_all()
