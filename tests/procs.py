"""Start real failover processes from tests and stop them by pid (only ours)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from failover.etcdproc import free_port

REPO = Path(__file__).resolve().parent.parent


class Proc:
    """A child process running ``python -m failover.cli ARGS`` with its log in a file."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "failover.cli", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=self._env,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def wait_log(self, needle: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            if not self.alive:
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{needle!r} not in {self.name} log after {timeout}s:\n{self.log()[-3000:]}"
                )
            time.sleep(0.02)


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
