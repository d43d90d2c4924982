"""Peer RPCs (replica -> replica) validate every field: bad values sent over real gRPC with a
replica certificate end in INVALID_ARGUMENT naming the field, before any work; a replica
may speak only as itself (the ids in the request are its certificate's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from coordinator.replica import Replica
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, wait_for
from tests.security.pki import Pki
from tests.security.test_mtls_cluster import dial

pytestmark = pytest.mark.cluster


@pytest.fixture
async def replica(etcd_cluster, prefix, pki: Pki) -> AsyncIterator[Replica]:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    rs.configs = [
        c.model_copy(
            update={
                "tls": pki.tls(f"replica-{c.replica_id}"),
                # Room for a forward with more hosts than any replica may serve.
                "stream": c.stream.model_copy(update={"max_message_bytes": 8 * 1024 * 1024}),
            }
        )
        for c in rs.configs
    ]
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        yield leader
    finally:
        await rs.stop_all()


def _host(**kw) -> apb.HostHealth:
    return apb.HostHealth(**{"host_id": "h1", "site": "default", **kw})


def _up(**kw) -> pb.PathHealth:
    return pb.PathHealth(**{"group": "cme-orders", "path": "primary", "state": pb.PATH_STATE_UP, **kw})


BAD_FORWARDS = [
    (apb.HealthForward(replica_id=""), "replica_id"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(host_id="bad host")]), "hosts.0.host_id"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(site="x" * 64)]), "hosts.0.site"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(), _host()]), "hosts.1.host_id: duplicate"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(paths=[_up(state=99)])]), "hosts.0.paths.0.state"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(paths=[_up(cause=77)])]), "hosts.0.paths.0.cause"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(paths=[_up(warmth=9)])]), "hosts.0.paths.0.warmth"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(paths=[_up(group="A B")])]), "hosts.0.paths.0.group"),
    (apb.HealthForward(replica_id="c2", hosts=[_host(paths=[_up(path="")])]), "hosts.0.paths.0.path"),
    (
        apb.HealthForward(replica_id="c2", hosts=[_host(paths=[_up(detect_us=-1)])]),
        "hosts.0.paths.0.detect_us",
    ),
    (
        apb.HealthForward(
            replica_id="c2",
            hosts=[_host(stages=[pb.StageTiming(stage="forward", where="c2", duration_us=10**13)])],
        ),
        "hosts.0.stages.0.duration_us",
    ),
    (
        apb.HealthForward(replica_id="c2", hosts=[_host(stages=[pb.StageTiming(stage="forward")] * 33)]),
        "hosts.0.stages",
    ),
    (
        apb.HealthForward(replica_id="c2", hosts=[apb.HostHealth(host_id=f"h{i}") for i in range(100_001)]),
        "hosts: 100001",
    ),
]


async def test_forward_health_fields(replica: Replica, pki: Pki) -> None:
    async with dial(replica.cfg.listen, pki.tls("replica-c2")) as ch:
        stub = admin_pb2_grpc.PeerStub(ch)
        for req, field in BAD_FORWARDS:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.ForwardHealth(req, timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert (e.value.details() or "").startswith(field), (field, e.value.details())
        # A good forward is accepted (this replica leads).
        ok = apb.HealthForward(replica_id="c2", hosts=[_host(full=True, paths=[_up(detect_us=5)])])
        assert (await stub.ForwardHealth(ok, timeout=10)).is_leader


async def test_status_and_collect_fields(replica: Replica, pki: Pki) -> None:
    async with dial(replica.cfg.listen, pki.tls("replica-c2")) as ch:
        stub = admin_pb2_grpc.PeerStub(ch)
        for req, field in (
            (apb.LocalStatusRequest(group="Bad Group"), "group"),
            (apb.LocalStatusRequest(host_limit=10**6), "host_limit"),
            (apb.LocalStatusRequest(hosts_after="a" * 100), "hosts_after"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.LocalStatus(req, timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert (e.value.details() or "").startswith(field)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.CollectHealth(apb.CollectHealthRequest(leader_id="no such/id"), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (e.value.details() or "").startswith("leader_id")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.PrepareToLead(apb.PrepareToLeadRequest(leader_id=""), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (e.value.details() or "").startswith("leader_id")
        assert (await stub.LocalStatus(apb.LocalStatusRequest(), timeout=10)).replica_id == "c1"
        assert (await stub.CollectHealth(apb.CollectHealthRequest(leader_id="c2"), timeout=10)).complete


async def test_a_replica_speaks_only_as_itself(replica: Replica, pki: Pki) -> None:
    async with dial(replica.cfg.listen, pki.tls("replica-c2")) as ch:
        stub = admin_pb2_grpc.PeerStub(ch)
        for call in (
            stub.ForwardHealth(apb.HealthForward(replica_id="c9"), timeout=10),
            stub.CollectHealth(apb.CollectHealthRequest(leader_id="c9"), timeout=10),
            stub.PrepareToLead(apb.PrepareToLeadRequest(leader_id="c9"), timeout=10),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "replica/c2" in (e.value.details() or "") and "'c9'" in (e.value.details() or "")
    assert replica.denials.total >= 3
