"""Coordinator -> etcd with client-certificate auth (issue 15, item 1).

etcd runs with ``--client-cert-auth --trusted-ca-file --cert-file --key-file`` on
https client URLs, with certificates from ``failover certs dev`` (its ``etcd``
certificate). A replica whose ``etcd.tls`` presents a certificate from that CA
elects itself and commits; one with a certificate from another CA, or none,
cannot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from failover.etcdproc import EtcdCluster, EtcdTls
from failover.tls import TlsSection
from tests.harness import ReplicaSet, wait_for
from tests.security.pki import Pki

pytestmark = pytest.mark.cluster


@pytest.fixture
def tls_etcd(pki: Pki) -> Iterator[EtcdCluster]:
    r = pki.root
    cluster = EtcdCluster(
        1,
        tls=EtcdTls(
            ca_file=r / "ca.pem",
            cert_file=r / "etcd.pem",
            key_file=r / "etcd.key",
            client_cert_file=r / "replica-c1.pem",
            client_key_file=r / "replica-c1.key",
        ),
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _etcd(cluster: EtcdCluster, prefix: str, tls: TlsSection) -> dict[str, Any]:
    return {"endpoints": cluster.endpoints, "prefix": prefix, "tls": tls}


async def test_replica_with_the_client_cert_elects_and_commits(
    tls_etcd: EtcdCluster, prefix: str, pki: Pki
) -> None:
    rs = ReplicaSet([], prefix, n=1, etcd=_etcd(tls_etcd, prefix, pki.tls("replica-c1")))
    await rs.start_all()
    try:
        leader = await rs.wait_leader(timeout=20)
        await wait_for(lambda: "cme-orders" in leader.view.routes, 20, "the initial decision committed")
        assert leader.view.routes["cme-orders"].epoch.revision > 0
    finally:
        await rs.stop_all()


@pytest.mark.parametrize("client", ["other-ca", "plaintext"])
async def test_replica_without_the_client_cert_cannot(
    tls_etcd: EtcdCluster, prefix: str, pki: Pki, client: str
) -> None:
    tls = pki.tls("operator-otherca") if client == "other-ca" else TlsSection()
    rs = ReplicaSet([], prefix, n=1, etcd=_etcd(tls_etcd, prefix, tls))
    try:
        try:
            await rs.start_all()
        except TimeoutError:
            pass  # it may never get ready: that is a refusal too
        # A negative: give it several lease TTLs to (wrongly) elect itself.
        await asyncio.sleep(5)
        assert rs.leaders() == []
        assert all("cme-orders" not in r.view.routes for r in rs.running())
    finally:
        await rs.stop_all()
