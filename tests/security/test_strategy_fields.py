"""The sidecar's strategy API checks every request field (issue 15, item 4).

One table over its RPCs on a real sidecar's Unix socket: each bad request is
refused with the expected code, the field named, and a bounded message (a
value is never echoed whole: a 100000-character id once became an oversized
status that gRPC itself refused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc
from tests.integration.test_policy_cluster import G, cluster

pytestmark = pytest.mark.cluster

HUGE = "x" * 100_000
C = grpc.StatusCode


async def _relay(stub: sidecar_pb2_grpc.SidecarStub, *reqs: spb.RelayRequest) -> list[spb.RelayEvent]:
    async def gen() -> AsyncIterator[spb.RelayRequest]:
        for r in reqs:
            yield r

    return [ev async for ev in stub.Relay(gen(), timeout=10)]


async def _watch(stub: sidecar_pb2_grpc.SidecarStub, req: spb.WatchRouteRequest) -> None:
    async for _ in stub.WatchRoute(req, timeout=10):
        return


ROWS: list[tuple[str, Callable[[Any], Any], grpc.StatusCode, str]] = [
    (
        "GetRoute huge group",
        lambda s: s.GetRoute(spb.GetRouteRequest(group=HUGE), timeout=10),
        C.NOT_FOUND,
        "group:",
    ),
    (
        "WatchRoute huge group",
        lambda s: _watch(s, spb.WatchRouteRequest(groups=[HUGE])),
        C.NOT_FOUND,
        "groups:",
    ),
    (
        "WatchRoute too many groups",
        lambda s: _watch(s, spb.WatchRouteRequest(groups=[G] * 20_000)),
        C.INVALID_ARGUMENT,
        "groups: 20000 groups, at most",
    ),
    (
        "Relay huge strategy id",
        lambda s: _relay(s, spb.RelayRequest(open=spb.RelayOpen(strategy_id=HUGE))),
        C.PERMISSION_DENIED,
        "strategy_id:",
    ),
    (
        "Relay without open",
        lambda s: _relay(s, spb.RelayRequest(message=spb.RelayMessage(group=G))),
        C.INVALID_ARGUMENT,
        "open{strategy_id}",
    ),
    (
        "ResolveInDoubt huge strategy id",
        lambda s: s.ResolveInDoubt(spb.ResolveInDoubtRequest(strategy_id=HUGE, group=G), timeout=10),
        C.PERMISSION_DENIED,
        "strategy_id:",
    ),
    (
        "ResolveInDoubt huge group",
        lambda s: s.ResolveInDoubt(spb.ResolveInDoubtRequest(strategy_id="demo", group=HUGE), timeout=10),
        C.NOT_FOUND,
        "group:",
    ),
    (
        "ResolveInDoubt too many ids",
        lambda s: s.ResolveInDoubt(
            spb.ResolveInDoubtRequest(strategy_id="demo", group=G, client_msg_ids=range(1, 10_002)),
            timeout=10,
        ),
        C.INVALID_ARGUMENT,
        "client_msg_ids:",
    ),
]


async def test_strategy_api_refuses_bad_fields_naming_them() -> None:
    failures = []
    async with (
        cluster(quick=True) as demo,
        grpc.aio.insecure_channel(f"unix:{demo.cluster.sockets['h1']}") as ch,
    ):
        stub = sidecar_pb2_grpc.SidecarStub(ch)
        for what, call, code, field in ROWS:
            try:
                await call(stub)
                failures.append(f"{what}: accepted")
            except grpc.aio.AioRpcError as exc:
                details = exc.details() or ""
                if exc.code() != code or field not in details or len(details) > 300:
                    failures.append(f"{what}: {exc.code().name} {details[:200]!r} ({len(details)} chars)")
        # A message with an undefined kind is refused as an outcome, naming the field.
        events = await _relay(
            stub,
            spb.RelayRequest(open=spb.RelayOpen(strategy_id="demo")),
            spb.RelayRequest(message=spb.RelayMessage(group=G, client_msg_id=1, kind=7)),  # type: ignore[arg-type]
        )
        reasons = [ev.outcome.reason for ev in events]
        if not any("kind:" in r for r in reasons):
            failures.append(f"Relay undefined kind: {reasons}")
    assert not failures, "\n".join(failures)
