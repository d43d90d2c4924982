"""SIGTERM stops a sidecar process promptly, also while its streams and paths keep reconnecting.

Several real sidecar processes, every coordinator address and every path endpoint
closed (so each keeps reconnecting: `stream to ... ended: UNAVAILABLE`), and
5 ms heartbeats; then SIGTERM to all of them at once, as a host shutdown does.
Each must log `stopped` and exit 0 within a bound that catches a hang, not a
slow machine.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from failover.procs import free_port
from tests.procs import Proc

SIDECARS = 4
ROUNDS = 2
STOP_BOUND_S = 10.0  # a clean stop takes well under a second; a swallowed cancel never ends


def sidecar_config(tmp: Path, sock_dir: Path, host: str) -> Path:
    closed = [f"127.0.0.1:{free_port()}" for _ in range(5)]  # nothing listens on these
    cfg = {
        "host_id": host,
        "groups": ["cme-orders"],
        "coordinators": closed[:3],
        "state_file": str(tmp / f"{host}.state.json"),
        "strategies": ["s1"],
        "listen": {"socket": str(sock_dir / f"{host}.sock")},
        "data_plane": {"heartbeat_interval_ms": 5, "reconnect_min_ms": 1, "reconnect_max_ms": 20},
        "bootstrap": [
            {
                "name": "cme-orders",
                "paths": [
                    {"name": "primary", "endpoints": {"default": closed[3]}},
                    {"name": "backup", "endpoints": {"default": closed[4]}},
                ],
            }
        ],
    }
    path = tmp / f"{host}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_sigterm_stops_every_sidecar_while_streams_reconnect(tmp_path: Path) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="fo-stop-", dir="/tmp"))
    procs: list[Proc] = []
    try:
        for round_ in range(ROUNDS):
            procs = [
                Proc(
                    f"h{i}-r{round_}",
                    ["sidecar", "--config", str(sidecar_config(tmp_path, sock_dir, f"h{i}"))],
                    tmp_path,
                ).start()
                for i in range(SIDECARS)
            ]
            for p in procs:
                p.wait_log("serving strategies", timeout=60)
            for p in procs:
                p.wait_log("stream to", timeout=30)  # the link is cycling through closed replicas
            t0 = time.monotonic()
            for p in procs:
                p.signal(signal.SIGTERM)
            for p in procs:
                assert p.proc is not None
                remaining = max(0.1, t0 + STOP_BOUND_S - time.monotonic())
                try:
                    rc = p.proc.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    # Every thread's stack and every task's await (SIGUSR1), to see where it hangs.
                    p.signal(signal.SIGUSR1)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.proc.wait(timeout=1.0)  # the dump is written by then; bounded
                    hung = f"{p.name} still running {STOP_BOUND_S}s after SIGTERM"
                    raise AssertionError(f"{hung}:\n{p.log()[-8000:]}") from None
                assert rc == 0, p.log()[-3000:]
                assert "stopped" in p.log(), p.log()[-3000:]
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_sigusr1_dumps_every_thread_and_the_sidecar_keeps_serving(tmp_path: Path) -> None:
    """What an operator (and the test above, on a hang) uses to see where a process is
    stuck: SIGUSR1 writes every thread's Python stack to stderr, and changes nothing else."""
    sock_dir = Path(tempfile.mkdtemp(prefix="fo-usr1-", dir="/tmp"))
    p = Proc("h-usr1", ["sidecar", "--config", str(sidecar_config(tmp_path, sock_dir, "h1"))], tmp_path)
    try:
        p.start()
        p.wait_log("serving strategies", timeout=60)
        p.signal(signal.SIGUSR1)
        p.wait_log("Current thread", timeout=10)
        assert "most recent call first" in p.log(), p.log()[-3000:]
        # Then, from the event loop, every task and the await it waits at.
        p.wait_log("asyncio tasks (SIGUSR1)", timeout=10)
        p.wait_log("coordinator-link: ", timeout=10)
        assert p.proc is not None and p.proc.poll() is None, "SIGUSR1 stopped the sidecar"
        p.signal(signal.SIGTERM)
        assert p.proc.wait(timeout=STOP_BOUND_S) == 0, p.log()[-3000:]
        assert "SIGTERM: stopping" in p.log(), p.log()[-3000:]
    finally:
        p.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_sighup_is_logged_and_ignored(tmp_path: Path) -> None:
    """A stray SIGHUP (a closed terminal, a logrotate hook) must not kill a sidecar: its
    default action would, with no log line and its socket left behind."""
    sock_dir = Path(tempfile.mkdtemp(prefix="fo-hup-", dir="/tmp"))
    p = Proc("h-hup", ["sidecar", "--config", str(sidecar_config(tmp_path, sock_dir, "h1"))], tmp_path)
    try:
        p.start()
        p.wait_log("serving strategies", timeout=60)
        p.signal(signal.SIGHUP)
        p.wait_log("SIGHUP: ignored", timeout=10)
        assert p.proc is not None and p.proc.poll() is None, "SIGHUP stopped the sidecar"
        p.signal(signal.SIGTERM)
        assert p.proc.wait(timeout=STOP_BOUND_S) == 0, p.log()[-3000:]
    finally:
        p.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_sighup_right_after_start_does_not_kill_the_sidecar(tmp_path: Path) -> None:
    """Before its event loop's handler is installed (imports, config), SIGHUP's default
    action ended the process (exit 129)."""
    sock_dir = Path(tempfile.mkdtemp(prefix="fo-hup0-", dir="/tmp"))
    p = Proc("h-hup0", ["sidecar", "--config", str(sidecar_config(tmp_path, sock_dir, "h1"))], tmp_path)
    try:
        p.start()
        time.sleep(0.15)  # the fault's timing (inside start-up), not a wait for an event
        p.signal(signal.SIGHUP)
        p.wait_log("serving strategies", timeout=60)
        assert p.proc is not None and p.proc.poll() is None, "SIGHUP at start stopped the sidecar"
        p.signal(signal.SIGTERM)
        assert p.proc.wait(timeout=STOP_BOUND_S) == 0, p.log()[-3000:]
    finally:
        p.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)
