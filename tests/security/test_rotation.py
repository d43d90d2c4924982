"""Certificate rotation without a restart: the replica's server takes new files at the
next handshake, an open sidecar stream keeps receiving decisions, and the old CA can
be withdrawn."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

from failover import devcerts, rpc
from failover.tls import TlsSection
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sync_pb2, sync_pb2_grpc
from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster


def _replace(path: Path, data: bytes) -> None:
    """Atomic replace, as a secret mount or cert-manager does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _tls(root: Path, stem: str, ca: str) -> TlsSection:
    return TlsSection(
        mode="mtls",
        ca_file=str(root / ca),
        cert_file=str(root / f"{stem}.pem"),
        key_file=str(root / f"{stem}.key"),
    )


class Stream:
    """One Sync stream; ``messages`` gets everything the replica sends."""

    def __init__(self, address: str, tls: TlsSection, host_id: str) -> None:
        self.channel = rpc.channel(address, tls=tls)
        self.out: asyncio.Queue[sync_pb2.SidecarMessage] = asyncio.Queue()
        self.out.put_nowait(
            sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id=host_id, groups=["cme-orders"]))
        )
        self.call = sync_pb2_grpc.SyncStub(self.channel).Stream(self._requests())

    async def _requests(self):
        while True:
            yield await self.out.get()

    async def read_until(self, pred, timeout: float = 10) -> sync_pb2.ReplicaMessage:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.call.read()
                assert msg is not grpc.aio.EOF
                if pred(msg):
                    return msg

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


async def test_rotation_keeps_streams_and_withdraws_the_old_ca(etcd_cluster, prefix, tmp_path: Path) -> None:
    root = tmp_path
    ca1, ca2 = devcerts.make_ca("CA one"), devcerts.make_ca("CA two")
    devcerts.write_pair(root, "server", devcerts.issue(ca1, "replica", "c1"))
    devcerts.write_pair(root, "sidecar-old", devcerts.issue(ca1, "sidecar", "h1"))
    devcerts.write_pair(root, "sidecar-new", devcerts.issue(ca2, "sidecar", "h2"))
    devcerts.write_pair(root, "operator-old", devcerts.issue(ca1, "operator", "alice"))
    (root / "bundle.pem").write_bytes(ca1.cert_pem)
    (root / "both.pem").write_bytes(ca1.cert_pem + ca2.cert_pem)
    (root / "ca2.pem").write_bytes(ca2.cert_pem)

    # 20 streams under one host's certificate: above the default per-host stream limit.
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"max_streams_per_host": 20})
    rs.configs = [rs.configs[0].model_copy(update={"tls": _tls(root, "server", "bundle.pem")})]
    await rs.start_all()
    streams: list[Stream] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        addr = leader.cfg.listen
        for _ in range(20):
            streams.append(Stream(addr, _tls(root, "sidecar-old", "both.pem"), "h1"))
        for s in streams:
            await s.read_until(lambda m: m.WhichOneof("kind") == "snapshot")

        # Rotate: the server trusts both CAs and presents a certificate from the new one.
        _replace(root / "bundle.pem", ca1.cert_pem + ca2.cert_pem)
        new = devcerts.issue(ca2, "replica", "c1")
        _replace(root / "server.key", new.key_pem)
        _replace(root / "server.pem", new.cert_pem)

        # A new connection that trusts only the new CA gets in (so it saw the new certificate).
        fresh = Stream(addr, _tls(root, "sidecar-new", "ca2.pem"), "h2")
        streams.append(fresh)
        await fresh.read_until(lambda m: m.WhichOneof("kind") == "snapshot")

        # The streams opened before the rotation still receive decisions.
        async with rpc.channel(addr, tls=_tls(root, "operator-old", "both.pem")) as ch:
            resp = await admin_pb2_grpc.AdminStub(ch).Switch(
                apb.SwitchRequest(group="cme-orders", path="backup", reason="rotation", force=True),
                timeout=10,
            )
        assert resp.decision.trigger.operator == "alice"
        for s in streams[:20]:
            await s.read_until(
                lambda m: m.WhichOneof("kind") == "decision" and list(m.decision.paths)[:1] == ["backup"]
            )

        # Withdraw the old CA: a client holding a certificate from it is refused.
        _replace(root / "bundle.pem", ca2.cert_pem)
        async with rpc.channel(addr, tls=_tls(root, "operator-old", "both.pem")) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await admin_pb2_grpc.AdminStub(ch).GetStatus(apb.GetStatusRequest(), timeout=3)
            assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        for s in streams:
            await s.close()
        await rs.stop_all()
