"""Start real failover processes from tests and stop them by pid (only ours)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from failover.procs import Child, child_env, cli_argv, free_port

REPO = Path(__file__).resolve().parent.parent


class Proc(Child):
    """``python -m failover.cli ARGS`` run from the repository, its log in ``log_dir/NAME.log``.

    ``args`` may be changed before ``start`` (the command line is built then).
    """

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(name, cli_argv(*args), log_dir / f"{name}.log", env=child_env(env), cwd=REPO)
        self.args = args

    def start(self) -> Proc:
        self.argv = cli_argv(*self.args)
        super().start()
        return self


def group(
    name: str = "cme-orders",
    paths: tuple[str, ...] = ("primary", "backup"),
    base_port: int = 9001,
    **policy: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [
            {"name": p, "endpoints": {"default": f"127.0.0.1:{base_port + i}"}} for i, p in enumerate(paths)
        ],
        **({"policy": policy} if policy else {}),
    }


def coordinator_config(
    tmp: Path,
    replica_id: str,
    endpoints: list[str],
    prefix: str,
    groups: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> tuple[Path, str]:
    port = free_port()
    cfg = {
        "replica_id": replica_id,
        "listen": f"127.0.0.1:{port}",
        "etcd": {"endpoints": endpoints, "prefix": prefix},
        "groups": groups if groups is not None else [group()],
        **extra,
    }
    path = tmp / f"{replica_id}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, f"127.0.0.1:{port}"


def cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "failover.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def status_json(address: str) -> dict[str, Any]:
    r = cli("status", "--json", "--hosts", "-c", address, timeout=15)
    if r.returncode != 0:
        raise RuntimeError(f"status failed: {r.stderr}")
    return dict(json.loads(r.stdout))
