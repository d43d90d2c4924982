"""The control commands (``drain``, ``undrain``, ``pin``, ``unpin``, ``pause``, ``resume``,
``halt``) take ``--timeout`` as ``switch`` does: the whole command's wait, shared across
the addresses.

Found from outside: ``drain`` with three replicas during an etcd quorum loss took about
26 s, each address getting its own 10 s. Here bare ports that accept and never speak
HTTP/2 (a paused replica) and loopback gRPC servers (a follower stuck forwarding to a
leader it cannot reach) stand in for the replicas; the CLI runs as a process.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.procs import cli

_HANG_BOUND_S = 30.0
# Each control command with its arguments (the path ones take GROUP PATH).
_CONTROLS = {
    "drain": ["g1", "primary"],
    "undrain": ["g1", "primary"],
    "pin": ["g1", "primary"],
    "unpin": ["g1"],
    "pause": ["g1"],
    "resume": ["g1"],
    "halt": ["g1"],
}


class _Replica(admin_pb2_grpc.AdminServicer):
    """``SetControl``: held until released (``hang``), refused at once as UNAVAILABLE
    (``refuse``), or recorded. Each call's deadline is noted as the server saw it."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.release = threading.Event()
        self.deadlines: list[float | None] = []

    def SetControl(self, request: apb.SetControlRequest, context: Any) -> apb.ControlResponse:  # noqa: N802
        self.deadlines.append(context.time_remaining())
        if self.mode == "hang":
            self.release.wait(_HANG_BOUND_S)
            context.abort(grpc.StatusCode.UNAVAILABLE, "released")
        if self.mode == "refuse":
            context.abort(grpc.StatusCode.UNAVAILABLE, "no leader elected right now; retry")
        return apb.ControlResponse(message=f"{apb.ControlAction.Name(request.action)} recorded")


@contextlib.contextmanager
def _replicas(*modes: str) -> Iterator[list[tuple[str, _Replica]]]:
    with contextlib.ExitStack() as stack:
        found = []
        for mode in modes:
            servicer = _Replica(mode)
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            admin_pb2_grpc.add_AdminServicer_to_server(servicer, server)
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            stack.callback(server.stop, None)
            stack.callback(servicer.release.set)
            found.append((f"127.0.0.1:{port}", servicer))
        yield found


@contextlib.contextmanager
def _silent_ports(n: int) -> Iterator[list[str]]:
    """Ports that accept connections and never answer, as a paused process's do."""
    with contextlib.ExitStack() as stack:
        addrs = []
        for _ in range(n):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            s.listen()
            addrs.append(f"127.0.0.1:{s.getsockname()[1]}")
        yield addrs


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no coordinator answered"), r.stderr
    return lines[0]


def test_drain_on_three_silent_addresses_ends_within_its_timeout() -> None:
    """The outside tester's case: three addresses, ``--timeout 2``, about 2 s, one line."""
    with _silent_ports(3) as addrs:
        t0 = time.monotonic()
        r = cli(
            "drain", "g1", "primary", "--reason", "r", "-c", ",".join(addrs), "--timeout", "2", timeout=60
        )
        took = time.monotonic() - t0
    line = _one_error_line(r)
    assert all(a in line for a in addrs), line
    assert took < 3.0, f"{took:.2f}s for --timeout 2: {line}"


@pytest.mark.parametrize("command", sorted(_CONTROLS))
def test_every_control_command_shares_its_timeout_across_the_addresses(command: str) -> None:
    """Replicas that take the call and never answer: the command ends near ``--timeout``,
    and the first address got a third of it, not all of it."""
    with _replicas("hang", "hang", "hang") as reps:
        addrs = ",".join(a for a, _ in reps)
        t0 = time.monotonic()
        r = cli(command, *_CONTROLS[command], "-c", addrs, "--timeout", "1.5", timeout=60)
        took = time.monotonic() - t0
        line = _one_error_line(r)
        assert all(a in line for a, _ in reps), line
        assert [len(s.deadlines) for _, s in reps] == [1, 1, 1]
        first = reps[0][1].deadlines[0]
        assert first is not None and first <= 0.5 + 0.1, first
    assert took < 2.5, f"{took:.2f}s for --timeout 1.5: {line}"


def test_the_default_timeout_is_switchs_ten_seconds_shared() -> None:
    """Without ``--timeout``: 10 s for the whole command, so the first of two addresses gets
    about 5 s (it got 10 s of its own before, and so did each next one)."""
    with _replicas("refuse", "ok") as reps:
        r = cli("drain", "g1", "primary", "-c", ",".join(a for a, _ in reps), timeout=60)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert "CONTROL_ACTION_DRAIN recorded" in r.stdout, r.stdout
        first, second = reps[0][1].deadlines[0], reps[1][1].deadlines[0]
    assert first is not None and 4.0 <= first <= 5.1, first
    assert second is not None and 9.0 <= second <= 10.1, second


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_a_control_timeout_out_of_range_is_a_usage_error(value: str) -> None:
    r = cli("pause", "g1", "-c", "127.0.0.1:1", "--timeout", value, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--timeout" in lines[0], r.stderr
