"""The operator CLI over mTLS: certificates from `failover certs dev`, identity from the
certificate, denials as one line, and no key material in any output."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest

from tests.harness import ReplicaSet, wait_for
from tests.procs import cli
from tests.security.pki import Pki

pytestmark = pytest.mark.cluster


def _env(root: Path, stem: str) -> dict[str, str]:
    return {
        "FAILOVER_TLS_CA": str(root / "ca.pem"),
        "FAILOVER_TLS_CERT": str(root / f"{stem}.pem"),
        "FAILOVER_TLS_KEY": str(root / f"{stem}.key"),
    }


def _key_bodies(root: Path) -> list[str]:
    """Lines of every private key's base64 body (what a leak would show)."""
    out = []
    for key in root.glob("*.key"):
        out += [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]
    return out


def test_certs_dev_writes_a_ca_and_role_certificates(tmp_path: Path) -> None:
    r = cli(
        "certs", "dev", str(tmp_path / "pki"), "--replicas", "c1", "--hosts", "h1", "--operators", "alice"
    )
    assert r.returncode == 0, r.stderr
    root = tmp_path / "pki"
    for stem in ("ca", "replica-c1", "sidecar-h1", "operator-alice", "viewer-viewer", "etcd"):
        assert (root / f"{stem}.pem").exists()
        assert ((root / f"{stem}.key").stat().st_mode & 0o777) == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((root / "sidecar-h1.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spiffe://failover/sidecar/h1" in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert not any(b in r.stdout + r.stderr for b in _key_bodies(root))
    again = cli("certs", "dev", str(root))
    assert again.returncode == 2 and "--force" in again.stderr


def test_cli_flags_are_checked() -> None:
    r = cli("--tls-ca", "x.pem", "status", "-c", "127.0.0.1:1")
    assert r.returncode == 2 and "--tls-cert" in r.stderr and "Traceback" not in r.stderr
    r = cli("--insecure", "--tls-ca", "a", "--tls-cert", "b", "--tls-key", "c", "status", "-c", "127.0.0.1:1")
    assert r.returncode == 2 and "--insecure" in r.stderr


async def test_cli_over_mtls(etcd_cluster, prefix, pki: Pki, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    rs.configs = [c.model_copy(update={"tls": pki.tls(f"replica-{c.replica_id}")}) for c in rs.configs]
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        addr = leader.cfg.listen
        run = lambda *a, env=None: asyncio.to_thread(cli, *a, "-c", addr, env=env, timeout=30)  # noqa: E731
        outputs = []
        # Plaintext against an mTLS replica: refused at the handshake.
        r = await run("status")
        outputs.append(r)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        # A viewer reads, but cannot switch: one line naming the identity and the action.
        r = await run("status", "--json", env=_env(pki.root, "viewer-vera"))
        outputs.append(r)
        assert r.returncode == 0, r.stderr
        json.loads(r.stdout)
        r = await run(
            "switch", "cme-orders", "backup", "--reason", "t", "--force", env=_env(pki.root, "viewer-vera")
        )
        outputs.append(r)
        assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr and "viewer/vera" in r.stderr
        # An operator switches; the decision names the certificate's operator, not --operator.
        r = await run(
            "switch", "cme-orders", "backup", "--reason", "t", "--force", "--operator", "mallory",
            env=_env(pki.root, "operator-alice"),
        )  # fmt: skip
        outputs.append(r)
        assert r.returncode == 0, r.stderr
        r = await run("history", "cme-orders", "--json", env=_env(pki.root, "operator-alice"))
        outputs.append(r)
        assert r.returncode == 0, r.stderr
        assert '"alice"' in r.stdout and "mallory" not in r.stdout
        # Unreadable key file: the error names the file, never its content.
        r = await run(
            "status", env={**_env(pki.root, "operator-alice"), "FAILOVER_TLS_KEY": "/nonexistent.key"}
        )
        outputs.append(r)
        assert r.returncode == 2 and "/nonexistent.key" in r.stderr and "Traceback" not in r.stderr
        text = "".join(o.stdout + o.stderr for o in outputs) + caplog.text
        assert "denied: viewer/vera may not call Switch" in caplog.text
        assert "PRIVATE KEY" not in text
        assert not [b for b in _key_bodies(pki.root) if b in text]
        assert not re.search(r"BEGIN CERTIFICATE", text)
    finally:
        await rs.stop_all()
