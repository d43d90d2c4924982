"""Certificate files that gRPC could never use are a bad config (exit 2) at start.

Found from outside: with ``tls.mode: mtls`` and files that are not PEM, the coordinator
printed raw gRPC C-core lines and ``error: cannot listen on ...: Failed to bind to
address`` (exit 1); the sidecar started and logged three raw C-core ``E`` lines per
connection attempt for ever. ``failover --tls-ca /nonexistent ... status`` exited 1.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from failover import devcerts
from failover.procs import cli_argv
from failover.tls import TlsError, TlsSection


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    devcerts.write_dev_tree(root, replicas=["c1", "c2"], hosts=["h1"], operators=["alice"], viewers=[])
    (root / "garbage.pem").write_text("this is not a certificate\n")
    return root


def _section(pki: Path, **files: str) -> TlsSection:
    names = {"ca_file": "ca.pem", "cert_file": "replica-c1.pem", "key_file": "replica-c1.key", **files}
    return TlsSection(mode="mtls", **{k: str(pki / v) for k, v in names.items()})


def test_a_good_set_loads(pki: Path) -> None:
    _section(pki).files().load()


@pytest.mark.parametrize(
    ("field", "name", "words"),
    [
        ("ca_file", "garbage.pem", "no PEM certificate"),
        ("cert_file", "garbage.pem", "no PEM certificate"),
        ("key_file", "garbage.pem", "not a PEM private key"),
        ("cert_file", "replica-c1.key", "no PEM certificate"),
        ("key_file", "replica-c2.key", "does not match"),
    ],
)
def test_a_file_gRPC_cannot_use_is_named(pki: Path, field: str, name: str, words: str) -> None:
    with pytest.raises(TlsError) as err:
        _section(pki, **{field: name}).files().load()
    msg = str(err.value)
    assert msg.startswith(f"tls.{field}: ") and str(pki / name) in msg and words in msg, msg
    assert "BEGIN" not in msg  # never the key's content


def _run(tmp_path: Path, command: str, cfg: dict[str, object]) -> subprocess.CompletedProcess[str]:
    p = tmp_path / f"{command}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return subprocess.run(cli_argv(command, "--config", str(p)), capture_output=True, text=True, timeout=60)


def _tls(pki: Path, ca: str = "garbage.pem") -> dict[str, str]:
    return {
        "mode": "mtls",
        "ca_file": str(pki / ca),
        "cert_file": str(pki / "replica-c1.pem"),
        "key_file": str(pki / "replica-c1.key"),
    }


def test_a_coordinator_with_a_certificate_file_that_is_not_pem_exits_2(pki: Path, tmp_path: Path) -> None:
    cfg = {
        "replica_id": "c1",
        "listen": "127.0.0.1:0",
        "etcd": {"endpoints": ["127.0.0.1:1"]},
        "tls": _tls(pki),
    }
    out = _run(tmp_path, "coordinator", cfg)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert out.stderr.startswith(f"error: config: tls.ca_file: {pki / 'garbage.pem'}"), out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "bind" not in out.stderr, out.stderr[-3000:]


def test_a_sidecar_with_a_certificate_file_that_is_not_pem_exits_2(pki: Path, tmp_path: Path) -> None:
    cfg = {
        "host_id": "h1",
        "groups": ["g1"],
        "coordinators": ["127.0.0.1:1"],
        "state_file": str(tmp_path / "h1.state.json"),
        "listen": {"socket": str(tmp_path / "h1.sock")},
        "tls": _tls(pki),
    }
    out = _run(tmp_path, "sidecar", cfg)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert out.stderr.startswith(f"error: config: tls.ca_file: {pki / 'garbage.pem'}"), out.stderr[-3000:]


@pytest.mark.parametrize("ca", ["/nonexistent/ca.pem", "garbage.pem"])
def test_a_cli_tls_file_it_cannot_use_is_a_usage_error(pki: Path, ca: str) -> None:
    ca_path = ca if ca.startswith("/") else str(pki / ca)
    out = subprocess.run(
        cli_argv(
            "--tls-ca",
            ca_path,
            "--tls-cert",
            str(pki / "operator-alice.pem"),
            "--tls-key",
            str(pki / "operator-alice.key"),
            "status",
            "-c",
            "127.0.0.1:1",
        ),  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert out.stderr.startswith("error: --tls-ca: ") and ca_path in out.stderr, out.stderr[-3000:]
    assert len(out.stderr.splitlines()) == 1, out.stderr[-3000:]
