"""A client that closes its sending side still gets every outcome, then the end.

Found from outside (3 of 3 on each transport): a client that sent `open` and an order and
half-closed at once (gRPC: the request iterator ends; framed: `shutdown(SHUT_WR)`) got a
gRPC stream ending OK with no event, or a framed connection closed with no frame at all,
while the venue booked the order. Every message gets exactly one outcome (docs/api.md):
the sidecar now keeps the stream open until each has its outcome, then ends it (gRPC OK;
framed, a last `closed` frame). The shipped library waits for its outcomes before it
half-closes; any other client of the public contract depended on this.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc
from failover.wire.frames import HEADER
from tests.sidecar_integration.harness import GROUP, STRATEGY, standard, system

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

N = 5
DELAY_MS = 300  # the venue answers each order this late: every outcome comes after the half-close
BOUND_S = 15.0


def _messages(first_id: int) -> list[spb.RelayRequest]:
    return [spb.RelayRequest(open=spb.RelayOpen(strategy_id=STRATEGY))] + [
        spb.RelayRequest(
            message=spb.RelayMessage(
                group=GROUP,
                client_msg_id=first_id + i,
                kind=spb.MESSAGE_KIND_NEW_ORDER,
                payload=b'{"sym":"ESZ6","qty":1}',
            )
        )
        for i in range(N)
    ]


def _outcome_ids(events: list[spb.RelayEvent]) -> list[int]:
    return sorted(e.outcome.client_msg_id for e in events if e.WhichOneof("kind") == "outcome")


async def test_a_grpc_client_that_half_closes_gets_every_outcome_then_ok(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), replicas=1)
        await s.fault("primary", "slow", delay_ms=DELAY_MS)

        async def requests() -> AsyncIterator[spb.RelayRequest]:
            for r in _messages(1000):
                yield r  # then the iterator ends: the client's half-close

        async with grpc.aio.insecure_channel(f"unix:{s.sidecars['h1'].socket}") as ch:
            call = sidecar_pb2_grpc.SidecarStub(ch).Relay(requests(), timeout=BOUND_S)
            events = [ev async for ev in call]
            code = await call.code()
        assert code == grpc.StatusCode.OK, (code, await call.details())
        assert _outcome_ids(events) == list(range(1000, 1000 + N)), events


async def test_a_framed_client_that_half_closes_gets_every_outcome_then_closed(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        framed = str(s.sock_dir / "h1.framed.sock")
        await standard(
            s,
            ("h1",),
            replicas=1,
            sidecar={"listen": {"socket": str(s.sock_dir / "h1.sock"), "framed_socket": framed}},
        )
        await s.fault("primary", "slow", delay_ms=DELAY_MS)

        def talk() -> list[spb.RelayEvent]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sk:
                sk.settimeout(BOUND_S)
                sk.connect(framed)
                for r in _messages(2000):
                    body = r.SerializeToString()
                    sk.sendall(HEADER.pack(len(body)) + body)
                sk.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := sk.recv(65536):
                    data += chunk
            events = []
            while data:
                (n,) = HEADER.unpack(data[: HEADER.size])
                events.append(spb.RelayEvent.FromString(data[HEADER.size : HEADER.size + n]))
                data = data[HEADER.size + n :]
            return events

        events = await asyncio.to_thread(talk)
        assert _outcome_ids(events) == list(range(2000, 2000 + N)), events
        assert events[-1].WhichOneof("kind") == "closed", events[-1]
