"""A certificate file a server's config names but cannot be read is a bad config (exit 2,
one line naming the setting) before anything starts. Found from outside: a missing
``etcd.tls`` file let the replica start serving, log tracebacks and end with
``unexpected error: ExceptionGroup(...)``, exit 1; a missing ``tls`` file exited 1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from failover.procs import cli_argv

MISSING = {
    "mode": "mtls",
    "ca_file": "/nonexistent/ca.pem",
    "cert_file": "/nonexistent/c.pem",
    "key_file": "/nonexistent/k.pem",
}


def _run(tmp_path: Path, command: str, cfg: dict[str, object]) -> subprocess.CompletedProcess[str]:
    p = tmp_path / f"{command}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return subprocess.run(cli_argv(command, "--config", str(p)), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("section", ["tls", "etcd.tls"])
def test_a_coordinator_with_an_unreadable_certificate_file_exits_2(tmp_path: Path, section: str) -> None:
    cfg: dict[str, object] = {
        "replica_id": "c1",
        "listen": "127.0.0.1:0",
        "etcd": {"endpoints": ["127.0.0.1:1"]},
    }
    if section == "tls":
        cfg["tls"] = MISSING
    else:
        cfg["etcd"] = {"endpoints": ["127.0.0.1:1"], "tls": MISSING}
    out = _run(tmp_path, "coordinator", cfg)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert f"error: config: {section}.ca_file: cannot read /nonexistent/ca.pem" in out.stderr, out.stderr[
        -3000:
    ]
    assert "serving" not in out.stderr and "Traceback" not in out.stderr, out.stderr[-3000:]


def test_a_sidecar_with_an_unreadable_certificate_file_exits_2(tmp_path: Path) -> None:
    cfg = {
        "host_id": "h1",
        "groups": ["g1"],
        "coordinators": ["127.0.0.1:1"],
        "state_file": str(tmp_path / "h1.state.json"),
        "listen": {"socket": str(tmp_path / "h1.sock")},
        "tls": MISSING,
    }
    out = _run(tmp_path, "sidecar", cfg)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert "error: config: tls.ca_file: cannot read /nonexistent/ca.pem" in out.stderr, out.stderr[-3000:]
