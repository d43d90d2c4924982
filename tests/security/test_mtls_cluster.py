"""mTLS on the CLI -> coordinator, sidecar -> coordinator and replica -> replica links,
with real replicas on a real etcd and certificates from tests/security/pki.py.

The mTLS matrix: no certificate, a certificate from another CA, expired, not yet
valid, wrong role, right role; plus the authorization checks that need a live
server (identity from the certificate, a sidecar streaming as another host).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from coordinator.replica import Replica
from failover import rpc
from failover.tls import TlsSection
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sync_pb2, sync_pb2_grpc
from tests.harness import ReplicaSet, wait_for
from tests.security.pki import Pki

pytestmark = pytest.mark.cluster

HANDSHAKE_FAILS = ["plaintext", "no-cert", "otherca", "expired", "future", "untrusted-server"]


def client_tls(pki: Pki, kind: str) -> TlsSection | None:
    """The client side of one row of the matrix (None: plaintext)."""
    if kind == "plaintext":
        return None
    if kind == "no-cert":
        # A TLS client that trusts the server but presents no certificate: same files
        # as a viewer, but the key/cert are dropped by channel() below.
        return pki.tls("viewer-vera")
    if kind == "untrusted-server":
        return pki.tls("operator-alice", ca="other-ca.pem")
    return pki.tls(f"operator-{kind}")


@contextlib.asynccontextmanager
async def dial(
    address: str, tls: TlsSection | None, *, no_cert: bool = False
) -> AsyncIterator[grpc.aio.Channel]:
    if no_cert:
        assert tls is not None
        creds = grpc.ssl_channel_credentials(root_certificates=Path(tls.ca_file).read_bytes())  # noqa: ASYNC240
        ch = grpc.aio.secure_channel(address, creds)
    else:
        ch = rpc.channel(address, tls=tls)
    try:
        yield ch
    finally:
        await ch.close()


@pytest.fixture
async def cluster(etcd_cluster, prefix, pki: Pki) -> AsyncIterator[tuple[ReplicaSet, Replica]]:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    rs.configs = [c.model_copy(update={"tls": pki.tls(f"replica-{c.replica_id}")}) for c in rs.configs]
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        yield rs, leader
    finally:
        await rs.stop_all()


def _code(exc: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> grpc.StatusCode:
    return exc.value.code()


async def test_cli_link_matrix(cluster, pki: Pki) -> None:
    rs, leader = cluster
    addr = leader.cfg.listen
    for kind in HANDSHAKE_FAILS:
        async with dial(addr, client_tls(pki, kind), no_cert=kind == "no-cert") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await admin_pb2_grpc.AdminStub(ch).GetStatus(apb.GetStatusRequest(), timeout=3)
            assert _code(e) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), kind
    switch = apb.SwitchRequest(group="cme-orders", path="backup", reason="t", operator="mallory", force=True)
    # Wrong role: a viewer reads but cannot act; a sidecar can do neither.
    async with dial(addr, pki.tls("viewer-vera")) as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        await stub.GetStatus(apb.GetStatusRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Switch(switch, timeout=5)
        assert _code(e) == grpc.StatusCode.PERMISSION_DENIED
        assert "viewer/vera" in e.value.details() and "Switch" in e.value.details()
    async with dial(addr, pki.tls("sidecar-h1")) as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        for call in (
            stub.Switch(switch, timeout=5),
            stub.SetControl(
                apb.SetControlRequest(action=apb.CONTROL_ACTION_HALT, group="cme-orders", reason="x"),
                timeout=5,
            ),
            stub.GetStatus(apb.GetStatusRequest(), timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call
            assert _code(e) == grpc.StatusCode.PERMISSION_DENIED and "sidecar/h1" in e.value.details()
    assert leader.denials.total >= 4
    # Right role, through the follower (forwarded to the leader): the decision records the
    # certificate's operator, not the name the request declared.
    follower = next(r for r in rs.running() if r is not leader)
    async with dial(follower.cfg.listen, pki.tls("operator-alice")) as ch:
        resp = await admin_pb2_grpc.AdminStub(ch).Switch(switch, timeout=10)
        assert resp.decision.trigger.operator == "alice"
        hist = await admin_pb2_grpc.AdminStub(ch).History(apb.HistoryRequest(group="cme-orders"), timeout=5)
        assert hist.decisions[-1].trigger.operator == "alice" or hist.decisions[0].trigger.operator == "alice"
    # The CN fallback identity works the same way.
    async with dial(addr, pki.tls("operator-cn")) as ch:
        switch.path = "primary"
        resp = await admin_pb2_grpc.AdminStub(ch).Switch(switch, timeout=10)
        assert resp.decision.trigger.operator == "carol"


async def test_peer_rpcs_need_a_replica(cluster, pki: Pki) -> None:
    _, leader = cluster
    for stem, ok in (
        ("operator-alice", False),
        ("viewer-vera", False),
        ("sidecar-h1", False),
        ("replica-c2", True),
    ):
        async with dial(leader.cfg.listen, pki.tls(stem)) as ch:
            call = admin_pb2_grpc.PeerStub(ch).LocalStatus(apb.LocalStatusRequest(), timeout=5)
            if ok:
                assert (await call).replica_id == leader.cfg.replica_id
            else:
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call
                assert _code(e) == grpc.StatusCode.PERMISSION_DENIED, stem


async def _first_message(
    address: str,
    tls: TlsSection | None,
    host_id: str,
    no_cert: bool = False,
    *,
    site: str = "",
    groups: tuple[str, ...] = ("cme-orders",),
):
    """Open a Sync stream as ``host_id``; the first message, or the error."""
    async with dial(address, tls, no_cert=no_cert) as ch:
        hello = sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id=host_id, site=site, groups=list(groups)))
        out: asyncio.Queue[sync_pb2.SidecarMessage] = asyncio.Queue()
        out.put_nowait(hello)

        async def requests():
            while True:
                yield await out.get()

        call = sync_pb2_grpc.SyncStub(ch).Stream(requests())
        try:
            async with asyncio.timeout(5):
                return await call.read()
        except grpc.aio.AioRpcError as exc:
            return exc
        finally:
            call.cancel()


async def test_sidecar_link_matrix(cluster, pki: Pki) -> None:
    _, leader = cluster
    addr = leader.cfg.listen
    for kind in HANDSHAKE_FAILS:
        got = await _first_message(addr, client_tls(pki, kind), "h1", no_cert=kind == "no-cert")
        assert isinstance(got, grpc.aio.AioRpcError), kind
        assert got.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), kind
    # Wrong role: an operator certificate cannot open the sidecar stream.
    got = await _first_message(addr, pki.tls("operator-alice"), "h1")
    assert isinstance(got, grpc.aio.AioRpcError) and got.code() == grpc.StatusCode.PERMISSION_DENIED
    # A sidecar cannot stream as another host.
    got = await _first_message(addr, pki.tls("sidecar-h1"), "h2")
    assert isinstance(got, grpc.aio.AioRpcError) and got.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "sidecar/h1" in got.details() and "h2" in got.details()
    # Right role, own host: the snapshot arrives.
    got = await _first_message(addr, pki.tls("sidecar-h1"), "h1")
    assert isinstance(got, sync_pb2.ReplicaMessage) and got.WhichOneof("kind") == "snapshot"


SITE_GROUPS = {"ny4": ["cme-orders"], "ld4": ["lse-orders"]}


@pytest.fixture
async def site_cluster(etcd_cluster, prefix, pki: Pki) -> AsyncIterator[Replica]:
    """One mTLS replica whose config limits the groups per site (site_groups)."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    rs.configs = [
        c.model_copy(update={"tls": pki.tls(f"replica-{c.replica_id}"), "site_groups": SITE_GROUPS})
        for c in rs.configs
    ]
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        yield leader
    finally:
        await rs.stop_all()


def _denied(got: object) -> str:
    assert isinstance(got, grpc.aio.AioRpcError), got
    assert got.code() == grpc.StatusCode.PERMISSION_DENIED, got
    return got.details() or ""


async def test_sidecar_receives_only_its_sites_groups(site_cluster: Replica, pki: Pki) -> None:
    replica = site_cluster
    addr = replica.cfg.listen
    # The site named in the certificate, allowed the group: the snapshot arrives.
    got = await _first_message(addr, pki.tls("sidecar-ny4-h3"), "h3", site="ny4")
    assert isinstance(got, sync_pb2.ReplicaMessage) and got.WhichOneof("kind") == "snapshot"
    assert [g.name for g in got.snapshot.groups] == ["cme-orders"]
    # Another site's group: refused, naming the identity and the group; nothing is pushed.
    msg = _denied(
        await _first_message(addr, pki.tls("sidecar-ld4-h4"), "h4", site="ld4", groups=("cme-orders",))
    )
    assert "sidecar/ld4/h4" in msg and "cme-orders" in msg
    # Asking for its own group and another site's in one hello: refused as a whole.
    msg = _denied(
        await _first_message(
            addr, pki.tls("sidecar-ld4-h4"), "h4", site="ld4", groups=("lse-orders", "cme-orders")
        )
    )
    assert "cme-orders" in msg
    # Declaring another site than the certificate's does not help.
    msg = _denied(await _first_message(addr, pki.tls("sidecar-ld4-h4"), "h4", site="ny4"))
    assert "sidecar/ld4/h4" in msg and "ny4" in msg
    # A sidecar certificate without a site receives nothing once site_groups is configured.
    msg = _denied(await _first_message(addr, pki.tls("sidecar-h1"), "h1", site="ny4"))
    assert "sidecar/h1" in msg and "no site" in msg
    assert replica.hub.denied_hellos == 4
    assert replica.denials.by_caller[("spiffe://failover/sidecar/ld4/h4", "/failover.v1.Sync/Stream")] == 3
    assert {s.host_id for s in replica.hub.sessions.values()} <= {"h3"}
