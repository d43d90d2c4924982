"""TLS plumbing: the ``tls`` config section, credentials from files, peer identities.

Servers get credentials whose certificate configuration is fetched again at
every new handshake when the files changed on disk (gRPC's dynamic server
credentials), so a rotated certificate or CA is used without a restart and open
streams are untouched. Channels read the files when they are built; owners of
long-lived channels rebuild them when :meth:`TlsFiles.changed` says so.

Key material is read here and handed to gRPC; it is never logged, formatted or
returned in an error message (only file paths are).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
from pydantic import BaseModel, ConfigDict, model_validator

log = logging.getLogger(__name__)

ENV_CA, ENV_CERT, ENV_KEY = "FAILOVER_TLS_CA", "FAILOVER_TLS_CERT", "FAILOVER_TLS_KEY"


class TlsSection(BaseModel):
    """``tls:`` in coordinator and sidecar configs.

    ``mode: mtls`` needs all three files; ``mode: insecure`` (the default, so
    existing local setups keep working) serves and dials plaintext and says so
    in one WARNING line at start.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    mode: Literal["mtls", "insecure"] = "insecure"
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # Name checked against the server's certificate instead of the dialled host
    # (e.g. when replicas are dialled by IP and their certificates name DNS only).
    server_name: str = ""

    @model_validator(mode="after")
    def _files(self) -> TlsSection:
        given = [f for f in ("ca_file", "cert_file", "key_file") if getattr(self, f)]
        if given and "mode" not in self.model_fields_set:
            # Whoever wrote the files meant TLS; running plaintext on the default is the
            # one reading of this section that is surely wrong.
            raise ValueError(
                f"tls.mode: required when certificate files are given ({', '.join(given)}): "
                "write mode: mtls (or mode: insecure to keep the files unused)"
            )
        if self.mode == "mtls":
            for field in ("ca_file", "cert_file", "key_file"):
                if not getattr(self, field):
                    raise ValueError(f"{field}: required when tls.mode is mtls")
        return self

    @property
    def enabled(self) -> bool:
        return self.mode == "mtls"

    def files(self) -> TlsFiles:
        """The certificate files of this section (mode mtls only)."""
        return TlsFiles(Path(self.ca_file), Path(self.cert_file), Path(self.key_file))


INSECURE = TlsSection()


@dataclass(frozen=True)
class Material:
    """Bytes of one consistent read of the three files."""

    ca: bytes
    cert: bytes
    key: bytes


class TlsError(OSError):
    """A certificate file is missing or unreadable; the message names the file, not its content."""


@dataclass(frozen=True)
class TlsFiles:
    """The CA bundle, certificate chain and private key of one identity."""

    ca: Path
    cert: Path
    key: Path

    def signature(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when any file is replaced or rewritten (inode, size, mtime)."""
        out = []
        for p in (self.ca, self.cert, self.key):
            try:
                st = os.stat(p)
            except OSError:
                out.append((0, 0, 0))
                continue
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def read(self) -> Material:
        parts = []
        for what, p in (("ca_file", self.ca), ("cert_file", self.cert), ("key_file", self.key)):
            try:
                parts.append(p.read_bytes())
            except OSError as exc:
                raise TlsError(f"tls.{what}: cannot read {p}: {exc.strerror or exc}") from None
        return Material(*parts)

    def load(self) -> Material:
        """:meth:`read`, and each file parsed as gRPC will use it: a file that is not PEM
        (or a key of another certificate) otherwise surfaced as raw C-core lines, a
        listener that "failed to bind", or a sidecar retrying for ever."""
        m = self.read()
        check_material(m, self)
        return m


def check_material(m: Material, files: TlsFiles) -> None:
    """Raise TlsError naming the first file gRPC could not use (never its content)."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    certs = {}
    for what, path, data in (("ca_file", files.ca, m.ca), ("cert_file", files.cert, m.cert)):
        try:
            certs[what] = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise TlsError(f"tls.{what}: {path} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(m.key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TlsError(f"tls.key_file: {files.key} is not a PEM private key (unencrypted)") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != certs["cert_file"][0].public_key().public_bytes(*spki):
        raise TlsError(
            f"tls.key_file: {files.key} does not match the certificate in tls.cert_file {files.cert}"
        )


class ServerCerts:
    """Server credentials that pick up new files at the next handshake."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._sig = files.signature()
        self.loads = 1
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._config(files.read()), self._fetch, require_client_authentication=True
        )

    @staticmethod
    def _config(m: Material) -> Any:
        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], root_certificates=m.ca)

    def _fetch(self) -> Any:
        """Called by gRPC before each handshake: a new configuration only when the files changed.

        A half-written or unreadable set keeps the previous configuration (logged),
        so a rotation in progress never takes the server down.
        """
        sig = self._files.signature()
        if sig == self._sig:
            return None
        try:
            cfg = self._config(self._files.load())
        except Exception as exc:  # noqa: BLE001 - never raise into gRPC core
            log.warning("tls: keeping the previous certificates: %s", exc)
            return None
        self._sig = sig
        self.loads += 1
        log.info("tls: server certificates reloaded from %s", self._files.cert)
        return cfg


def server_credentials(tls: TlsSection) -> grpc.ServerCredentials:
    """mTLS server credentials (clients must present a certificate from the CA)."""
    return ServerCerts(tls.files()).credentials


def channel_credentials(tls: TlsSection) -> grpc.ChannelCredentials:
    """mTLS channel credentials read from the files now."""
    m = tls.files().read()
    return grpc.ssl_channel_credentials(root_certificates=m.ca, private_key=m.key, certificate_chain=m.cert)


def warn_insecure(what: str) -> None:
    """The one loud line a process logs at start when it runs without TLS."""
    log.warning("INSECURE: %s without TLS (tls.mode: insecure): anyone who can reach it can act on it", what)


def warn_if_insecure(tls: TlsSection, what: str) -> None:
    """:func:`warn_insecure` unless ``tls`` is mtls."""
    if not tls.enabled:
        warn_insecure(what)


def from_env(env: dict[str, str] | None = None) -> TlsSection | None:
    """A section from ``FAILOVER_TLS_CA/CERT/KEY`` when any is set, else None."""
    env = dict(os.environ) if env is None else env
    ca, cert, key = env.get(ENV_CA, ""), env.get(ENV_CERT, ""), env.get(ENV_KEY, "")
    if not (ca or cert or key):
        return None
    return TlsSection(mode="mtls", ca_file=ca, cert_file=cert, key_file=key)


def peer_uri_or_cn(context: Any) -> str | None:
    """The caller's identity string from its verified certificate: the SAN URI when it
    has one, else the CN; None on a plaintext connection."""
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    for key in ("peer_spiffe_id", "peer_uri", "x509_common_name"):
        values = auth.get(key)
        if values:
            return bytes(values[0]).decode("utf-8", "replace")
    return ""
