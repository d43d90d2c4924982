"""``failover switch --timeout`` is the operator's whole wait, shared across the addresses.

Real gRPC servers on loopback stand in for replicas (the CLI runs as a process): one
that accepts a ``Switch`` and never answers (a follower stuck forwarding to a leader it
cannot reach), one that commits, and bare ports that accept and never speak HTTP/2 (a
paused replica).
"""

from __future__ import annotations

import contextlib
import socket
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


class _Replica(admin_pb2_grpc.AdminServicer):
    """Answers ``Switch`` with a committed decision, or (``hang``) holds it until released,
    or (``code``) fails it with that status at once."""

    def __init__(self, hang: bool, code: grpc.StatusCode | None = None) -> None:
        self.hang = hang
        self.code = code
        self.release = threading.Event()
        self.calls: list[float | None] = []  # each call's deadline as the server saw it
        self.request_ids: list[str | None] = []

    def Switch(self, request: apb.SwitchRequest, context: Any) -> apb.ControlResponse:  # noqa: N802
        self.calls.append(context.time_remaining())
        self.request_ids.append(dict(context.invocation_metadata()).get("failover-request-id"))
        if self.code is not None:
            context.abort(self.code, "Cancelling all calls")
        if self.hang:
            self.release.wait(_HANG_BOUND_S)
            context.abort(grpc.StatusCode.UNAVAILABLE, "released")
        resp = apb.ControlResponse(message="committed")
        resp.decision.paths.extend([request.path, "primary"])
        return resp


@contextlib.contextmanager
def _replica(hang: bool, code: grpc.StatusCode | None = None) -> Iterator[tuple[str, _Replica]]:
    servicer = _Replica(hang, code)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    admin_pb2_grpc.add_AdminServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        servicer.release.set()
        server.stop(grace=None)


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


def test_timeout_bounds_the_whole_command_not_each_address() -> None:
    """Four silent addresses and ``--timeout 1``: the command ends near 1 s, one line, exit 1
    (it took 4 s, ``--timeout`` per address, before the budget was shared)."""
    with _silent_ports(4) as addrs:
        t0 = time.monotonic()
        r = cli(
            "switch", "g1", "backup", "--reason", "r", "-c", ",".join(addrs), "--timeout", "1", timeout=60
        )
        took = time.monotonic() - t0
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no coordinator answered"), r.stderr
    assert all(a in lines[0] for a in addrs), lines[0]  # every address was tried and is named
    assert took < 3.0, f"{took:.2f}s for --timeout 1: {lines[0]}"


@pytest.mark.parametrize("timeout_s", [3.0, 10.0])
def test_a_stuck_first_address_cannot_spend_the_whole_budget(timeout_s: float) -> None:
    """A replica that takes the switch and never answers, listed first, gets a share of the
    budget, not all of it: the next address is tried in time and commits."""
    with _replica(hang=True) as (stuck, stuck_srv), _replica(hang=False) as (good, good_srv):
        t0 = time.monotonic()
        r = cli(
            "switch", "g1", "backup", "--reason", "r", "-c", f"{stuck},{good}",
            "--timeout", str(timeout_s), timeout=60,
        )  # fmt: skip
        took = time.monotonic() - t0
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "g1: backup > primary" in r.stdout, r.stdout
    assert len(stuck_srv.calls) == 1 and len(good_srv.calls) == 1
    first, second = stuck_srv.calls[0], good_srv.calls[0]
    assert first is not None and second is not None
    # An equal share for the stuck one; the last address gets all that is left.
    assert first <= timeout_s / 2 + 0.1, (first, second)
    assert second >= timeout_s / 2 - 0.5, (first, second)
    assert took < timeout_s, f"{took:.2f}s for --timeout {timeout_s}"


def test_a_replica_whose_server_cancels_the_call_moves_on_to_the_next_with_the_same_id() -> None:
    """A replica whose server stops under the call answers CANCELLED; the command tries the
    next address with the same request id (before, it printed the error and exited 1)."""
    with _replica(False, grpc.StatusCode.CANCELLED) as (gone, gone_srv), _replica(False) as (good, good_srv):
        r = cli("switch", "g1", "backup", "--reason", "r", "-c", f"{gone},{good}", timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "g1: backup > primary" in r.stdout, r.stdout
    assert len(gone_srv.request_ids) == 1 and gone_srv.request_ids == good_srv.request_ids
    assert gone_srv.request_ids[0]


def test_a_write_whose_deadline_passed_says_its_outcome_is_unknown() -> None:
    """Found from outside: a switch that timed out said only `DEADLINE_EXCEEDED`, although the
    replica holding it may commit it afterwards; an operator who read "failed" and switched
    elsewhere could be overtaken by it. The line now says the outcome is unknown and where
    to look. A refusal (the call never reached a replica) says nothing of the kind."""
    with _replica(hang=True) as (addr, _srv):
        r = cli("switch", "g1", "backup", "--reason", "r", "-c", addr, "--timeout", "1", timeout=60)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "DEADLINE_EXCEEDED" in r.stderr, r.stderr
    assert "outcome unknown: it may still be committed (see `failover history g1`" in r.stderr, r.stderr
    with _silent_ports(1) as addrs:
        closed = addrs[0]
    r = cli("pause", "g1", "--reason", "r", "-c", closed, "--timeout", "1", timeout=60)
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr
    assert "outcome unknown" not in r.stderr, r.stderr
