"""Certificates for the security tests: a dev tree plus the bad ones of the mTLS matrix."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from failover import devcerts
from failover.tls import TlsSection

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    root: Path

    def tls(self, stem: str, ca: str = "ca.pem") -> TlsSection:
        """An mtls section presenting ``<stem>.pem``; trusting ``ca``."""
        return TlsSection(
            mode="mtls",
            ca_file=str(self.root / ca),
            cert_file=str(self.root / f"{stem}.pem"),
            key_file=str(self.root / f"{stem}.key"),
        )


def make_pki(root: Path) -> Pki:
    devcerts.write_dev_tree(
        root, replicas=["c1", "c2"], hosts=["h1", "h2"], operators=["alice"], viewers=["vera"]
    )
    now = dt.datetime.now(dt.UTC)
    ca = devcerts.Authority(
        devcerts.load_key((root / "ca.key").read_bytes()), devcerts.load_cert((root / "ca.pem").read_bytes())
    )
    devcerts.write_pair(
        root,
        "operator-expired",
        devcerts.issue(ca, "operator", "old", not_before=now - 10 * DAY, not_after=now - DAY),
    )
    devcerts.write_pair(
        root,
        "operator-future",
        devcerts.issue(ca, "operator", "soon", not_before=now + DAY, not_after=now + 10 * DAY),
    )
    devcerts.write_pair(root, "operator-cn", devcerts.issue(ca, "operator", "carol", uri=False))
    # Sidecars whose certificates name their site (spiffe://failover/sidecar/<site>/<host>).
    devcerts.write_pair(root, "sidecar-ny4-h3", devcerts.issue(ca, "sidecar", "h3", site="ny4"))
    devcerts.write_pair(root, "sidecar-ld4-h4", devcerts.issue(ca, "sidecar", "h4", site="ld4"))
    other = devcerts.make_ca("another CA")
    devcerts.write_pair(root, "operator-otherca", devcerts.issue(other, "operator", "mallory"))
    (root / "other-ca.pem").write_bytes(other.cert_pem)
    return Pki(root)
