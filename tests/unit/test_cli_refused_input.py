"""Input the coordinators refuse is bad input: exit 2, as the CLI's own checks.

Found from outside: a blank ``--reason`` or a group name the coordinators refuse ended
``error: INVALID_ARGUMENT: ...`` with exit 1, where docs/cli.md's exit codes give bad
arguments 2 (a script told "retry later" from "fix the command" by it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from failover.v1 import admin_pb2_grpc
from tests.procs import cli


class _Refusing(admin_pb2_grpc.AdminServicer):  # type: ignore[misc]
    def Switch(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reason: required (why the switch is made)")

    def SetControl(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAVAILABLE, "no leader elected right now; retry")


@contextlib.contextmanager
def _serving() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    admin_pb2_grpc.add_AdminServicer_to_server(_Refusing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_an_argument_the_coordinators_refuse_exits_2_and_an_outage_1() -> None:
    with _serving() as addr:
        r = cli("switch", "cme-orders", "backup", "--reason", " ", "-c", addr)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert r.stderr.strip() == "error: INVALID_ARGUMENT: reason: required (why the switch is made)"
        r = cli("pause", "cme-orders", "--reason", "r", "-c", addr, "--timeout", "2")
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "UNAVAILABLE" in r.stderr, r.stderr
