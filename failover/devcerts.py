"""A local certificate authority and per-role certificates, for development and tests.

``failover certs dev DIR`` writes a CA and one certificate per identity. The
identity of a certificate is its SAN URI ``spiffe://failover/<role>/<name>``
(and, for tools that read only the subject, its CN ``<role>/<name>``); see
docs/security.md. Every certificate also carries the SANs ``localhost`` and
``127.0.0.1`` so servers can be reached on loopback with hostname checks on.

Keys are ECDSA P-256 (fast to make and to handshake) and written with mode 0600.
Not for production: a real deployment issues certificates from the firm's PKI
(or cert-manager) with the same SAN URIs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("replica", "sidecar", "operator", "viewer", "etcd")
URI_PREFIX = "spiffe://failover/"
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Authority:
    """A CA able to sign leaf certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(name: str = "failover dev CA", *, valid_days: int = 365) -> Authority:
    """A self-signed CA valid from a day ago for ``valid_days``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + valid_days * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def identity_uri(role: str, name: str, site: str = "") -> str:
    """The SAN URI that names ``role``/``name`` (a sidecar's may name its ``site`` too)."""
    return f"{URI_PREFIX}{role}/{site}/{name}" if site else f"{URI_PREFIX}{role}/{name}"


def issue(
    ca: Authority,
    role: str,
    name: str,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    uri: bool = True,
    site: str = "",
) -> Issued:
    """A leaf certificate for ``role``/``name`` signed by ``ca``.

    ``site`` (sidecars only) puts the host's site in its identity:
    ``spiffe://failover/sidecar/<site>/<host>``, which the coordinators' ``site_groups``
    checks.
    ``uri=False`` leaves the SAN URI out (the identity is then read from the CN).
    Validity defaults to a day ago until 90 days from now; tests pass other bounds
    to make expired or not-yet-valid certificates.
    """
    if role not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}")
    if site and role != "sidecar":
        raise ValueError("site: only sidecar certificates name a site")
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if uri:
        sans.append(x509.UniformResourceIdentifier(identity_uri(role, name, site)))
    cn = f"{role}/{site}/{name}" if site else f"{role}/{name}"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _DAY)
        .not_valid_after(not_after or now + 90 * _DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_private(path: Path, data: bytes) -> None:
    """Write a key file readable by its owner only (created 0600, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_pair(directory: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    """``<stem>.pem`` and ``<stem>.key`` in ``directory``; returns both paths."""
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    write_private(key, issued.key_pem)
    cert.write_bytes(issued.cert_pem)
    return cert, key


def write_dev_tree(
    directory: Path,
    *,
    replicas: list[str],
    hosts: list[str],
    operators: list[str],
    viewers: list[str],
) -> list[Path]:
    """A CA (``ca.pem``, ``ca.key``) and ``<role>-<name>.pem/.key`` for every identity,
    plus ``etcd.pem/.key`` for an etcd server; returns the certificate paths written.
    A host written ``<site>/<host>`` gets ``sidecar-<host>.pem`` naming its site."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    write_private(directory / "ca.key", _key_pem(ca.key))
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    written = [directory / "ca.pem"]
    plan = [
        *(("replica", n) for n in replicas),
        *(("sidecar", n) for n in hosts),
        *(("operator", n) for n in operators),
        *(("viewer", n) for n in viewers),
        ("etcd", "etcd"),
    ]
    for role, name in plan:
        # A host given as "<site>/<host>" gets a certificate naming its site too.
        site, _, name = name.rpartition("/") if role == "sidecar" else ("", "", name)
        stem = "etcd" if role == "etcd" else f"{role}-{name}"
        written.append(write_pair(directory, stem, issue(ca, role, name, site=site))[0])
    return written


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """A CA key written by :func:`write_dev_tree` (to issue more certificates from it)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("ca.key: not an EC private key")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)
