"""site_groups: the config, the certificates that name a site, and plaintext mode (where the
site is the hello's own). The mTLS case is in test_mtls_cluster.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from typer.testing import CliRunner

from coordinator.config import CoordinatorConfig
from coordinator.replica import Replica
from failover.certs_cli import certs_app
from tests.harness import ReplicaSet, wait_for
from tests.security.test_mtls_cluster import _first_message


def test_config_names_are_checked() -> None:
    cfg = CoordinatorConfig(site_groups={"ny4": ["cme-orders"]})
    assert cfg.site_groups == {"ny4": ["cme-orders"]}
    assert CoordinatorConfig().site_groups == {}  # default: no restriction
    with pytest.raises(ValueError, match="site"):
        CoordinatorConfig(site_groups={"NY 4": ["cme-orders"]})
    with pytest.raises(ValueError, match="group of site 'ny4'"):
        CoordinatorConfig(site_groups={"ny4": ["cme orders"]})


def test_certs_dev_writes_a_sidecar_certificate_naming_its_site(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        certs_app, [str(tmp_path), "--replicas", "c1", "--hosts", "ny4/h1,h2", "--operators", "alice"]
    )
    assert r.exit_code == 0, r.output

    def uris(stem: str) -> list[str]:
        cert = x509.load_pem_x509_certificate((tmp_path / f"{stem}.pem").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.UniformResourceIdentifier)

    assert uris("sidecar-h1") == ["spiffe://failover/sidecar/ny4/h1"]
    assert uris("sidecar-h2") == ["spiffe://failover/sidecar/h2"]
    bad = CliRunner().invoke(certs_app, [str(tmp_path / "x"), "--hosts", "a/b/c"])
    assert bad.exit_code == 2 and "a/b/c" in bad.output


@pytest.fixture
async def plain_replica(etcd_cluster, prefix) -> AsyncIterator[Replica]:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    rs.configs = [c.model_copy(update={"site_groups": {"ny4": ["cme-orders"]}}) for c in rs.configs]
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        yield leader
    finally:
        await rs.stop_all()


@pytest.mark.cluster
async def test_plaintext_checks_the_declared_site(plain_replica: Replica) -> None:
    addr = plain_replica.cfg.listen
    got = await _first_message(addr, None, "h1", site="ny4")
    assert not isinstance(got, grpc.aio.AioRpcError), got
    got = await _first_message(addr, None, "h2", site="ld4")
    assert isinstance(got, grpc.aio.AioRpcError) and got.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "h2" in (got.details() or "") and "cme-orders" in (got.details() or "")
    assert plain_replica.hub.denied_hellos == 1
