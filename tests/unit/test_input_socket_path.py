"""A sidecar socket path longer than a Unix socket address holds is a config error.

Found from outside: ``listen.socket`` longer than 107 bytes started the sidecar and
ended with exit 1 and a raw gRPC C-core line when it bound the socket.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from client.failover_sidecar.config import MAX_SOCKET_PATH_BYTES, SidecarConfig
from failover.procs import cli_argv


def _cfg(tmp_path: Path, **listen: str) -> dict[str, object]:
    return {
        "host_id": "h1",
        "groups": ["g1"],
        "coordinators": ["127.0.0.1:1"],
        "state_file": str(tmp_path / "h1.json"),
        "listen": listen,
    }


def _path(tmp_path: Path, size: int) -> str:
    base = str(tmp_path) + "/"
    return base + "s" * (size - len(base.encode()))


@pytest.mark.parametrize("field", ["socket", "framed_socket"])
def test_a_socket_path_beyond_the_limit_is_refused_naming_it(tmp_path: Path, field: str) -> None:
    assert MAX_SOCKET_PATH_BYTES == 107
    SidecarConfig.model_validate(_cfg(tmp_path, **{field: _path(tmp_path, 107)}))
    with pytest.raises(ValidationError, match=f"(?s)listen.{field}.*at most 107"):
        SidecarConfig.model_validate(_cfg(tmp_path, **{field: _path(tmp_path, 108)}))


def test_the_sidecar_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(_cfg(tmp_path, socket=_path(tmp_path, 150))))
    out = subprocess.run(cli_argv("sidecar", "--config", str(p)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert out.stderr.startswith("error: config: listen.socket:") and "107" in out.stderr, out.stderr[-3000:]
