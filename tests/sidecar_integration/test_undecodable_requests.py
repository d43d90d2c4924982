"""A request body that does not parse as its method's message is answered INVALID_ARGUMENT.

grpc.aio parses a unary request before any handler or interceptor runs; a body that is
not the method's protobuf message made it answer UNKNOWN and log an ERROR with a Python
traceback (``Unexpected [DecodeError] raised by servicer method``) in the serving
process. Bytes like that reach every port in production (a scanner, a client built from
another version of the protos, a proxy gone wrong): every method of every process we
run (coordinator, sidecar, venue simulator) must answer them with a clear status, log
no traceback, and keep serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from failover.v1 import admin_pb2, sidecar_pb2, venue_pb2
from tests.sidecar_integration.harness import GROUP, STRATEGY, System, epoch_of, route_of, standard, system

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# Not a protobuf message: field 31, wire type 7 (there is no wire type 7).
GARBAGE = b"\xff\xff\xff\xff\x0f garbage"


def _methods(descriptor: object) -> list[tuple[str, bool, bool]]:
    """(full method path, client streams, server streams) of every method of a service."""
    return [
        (f"/{descriptor.full_name}/{m.name}", m.client_streaming, m.server_streaming)  # type: ignore[attr-defined]
        for m in descriptor.methods  # type: ignore[attr-defined]
    ]


async def _send_garbage(
    channel: grpc.aio.Channel, method: str, client_streams: bool, server_streams: bool
) -> grpc.aio.AioRpcError:
    """Send GARBAGE as the (first) request of ``method``; the error the call ends with."""
    kw = {"request_serializer": None, "response_deserializer": None}

    async def one() -> AsyncIterator[bytes]:
        yield GARBAGE

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        if client_streams:
            make = channel.stream_stream if server_streams else channel.stream_unary
            call = make(method, **kw)(one(), timeout=5)
        else:
            make = channel.unary_stream if server_streams else channel.unary_unary
            call = make(method, **kw)(GARBAGE, timeout=5)
        if server_streams:
            async for _ in call:
                pass
        else:
            await call
    return exc.value


async def _every_method_answers(s: System, target: str, services: list[object]) -> None:
    channel = s.channel(target)
    for service in services:
        for method, client_streams, server_streams in _methods(service):
            e = await _send_garbage(channel, method, client_streams, server_streams)
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (target, method, e.code(), e.details())
            assert "does not parse" in (e.details() or "") or "not a" in (e.details() or ""), (
                method,
                e.details(),
            )


async def test_every_method_of_every_process_answers_an_undecodable_request(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), replicas=1)
        sock = f"unix:{s.sidecars['h1'].socket}"
        await _every_method_answers(
            s,
            next(iter(s.coordinator_addrs.values())),
            [admin_pb2.DESCRIPTOR.services_by_name["Admin"], admin_pb2.DESCRIPTOR.services_by_name["Peer"]],
        )
        await _every_method_answers(s, sock, [sidecar_pb2.DESCRIPTOR.services_by_name["Sidecar"]])
        await _every_method_answers(
            s, s.venues["venue"].control, [venue_pb2.DESCRIPTOR.services_by_name["VenueControl"]]
        )
        for target in (next(iter(s.coordinator_addrs.values())), sock, s.venues["venue"].control):
            e = await _send_garbage(s.channel(target), "/grpc.health.v1.Health/Check", False, False)
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (target, e.code(), e.details())

        # Every process still serves, and none of them logged a traceback.
        s.check_alive()
        d = await s.switch("backup")
        st = await s.wait_route("h1", "backup")
        assert epoch_of(route_of(st)) >= (d.epoch.era, d.epoch.revision)
        for p in [*s.coordinators.values(), s.sidecars["h1"].proc, s.venues["venue"].proc]:
            log = p.log()
            assert "Traceback" not in log and "Unexpected [" not in log, f"{p.name}:\n{log[-3000:]}"


async def test_a_relay_stream_that_turns_to_garbage_ends_with_a_status_after_its_outcomes(
    tmp_path, etcd_cluster, prefix
) -> None:
    """Before: a garbled request mid-stream ended the Relay stream with status OK, as if
    the strategy had closed it. DATA_LOSS (not INVALID_ARGUMENT, which the library reads
    as a refusal at open: REJECTED) leaves what was sent before it and has no outcome yet
    IN_DOUBT. The garbage goes once the order's outcome came, so the test does not race
    the venue's ack."""
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), replicas=1)
        raw = s.channel(f"unix:{s.sidecars['h1'].socket}").stream_stream(
            "/failover.v1.Sidecar/Relay", request_serializer=None, response_deserializer=None
        )
        order = sidecar_pb2.RelayMessage(
            group=GROUP, client_msg_id=1, kind=sidecar_pb2.MESSAGE_KIND_NEW_ORDER, payload=b"x"
        )

        outcome_seen = asyncio.Event()

        async def requests() -> AsyncIterator[bytes]:
            yield sidecar_pb2.RelayRequest(
                open=sidecar_pb2.RelayOpen(strategy_id=STRATEGY)
            ).SerializeToString()
            yield sidecar_pb2.RelayRequest(message=order).SerializeToString()
            await outcome_seen.wait()  # bounded by the call's deadline
            yield GARBAGE
            await asyncio.sleep(10)  # the stream stays open: the sidecar must end it

        events = []
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for ev in raw(requests(), timeout=5):
                events.append(sidecar_pb2.RelayEvent.FromString(ev))
                outcome_seen.set()
        assert exc.value.code() == grpc.StatusCode.DATA_LOSS, exc.value
        assert "does not parse" in (exc.value.details() or "")
        assert [(e.outcome.client_msg_id, e.outcome.kind) for e in events] == [
            (1, sidecar_pb2.OUTCOME_KIND_ACKED)
        ], events
        assert "Traceback" not in s.sidecars["h1"].proc.log()


async def test_a_second_open_on_a_relay_stream_ends_it_after_its_outcomes(
    tmp_path, etcd_cluster, prefix
) -> None:
    """Before: a second ``open`` on a gRPC Relay stream was ignored (the framed socket closes
    the connection): a strategy that meant to name another strategy_id went on under the
    first. The stream carries one strategy: it now ends FAILED_PRECONDITION (read by the
    library as IN_DOUBT for anything still waiting, not as a refusal at open), after the
    outcomes that came before."""
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), replicas=1)
        raw = s.channel(f"unix:{s.sidecars['h1'].socket}").stream_stream(
            "/failover.v1.Sidecar/Relay", request_serializer=None, response_deserializer=None
        )
        order = sidecar_pb2.RelayMessage(
            group=GROUP, client_msg_id=1, kind=sidecar_pb2.MESSAGE_KIND_NEW_ORDER, payload=b"x"
        )
        outcome_seen = asyncio.Event()
        hello = sidecar_pb2.RelayRequest(open=sidecar_pb2.RelayOpen(strategy_id=STRATEGY)).SerializeToString()

        async def requests() -> AsyncIterator[bytes]:
            yield hello
            yield sidecar_pb2.RelayRequest(message=order).SerializeToString()
            await outcome_seen.wait()  # bounded by the call's deadline
            yield hello
            await asyncio.sleep(10)  # the stream stays open: the sidecar must end it

        events = []
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            async for ev in raw(requests(), timeout=5):
                events.append(sidecar_pb2.RelayEvent.FromString(ev))
                outcome_seen.set()
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.value
        assert "open" in (exc.value.details() or "")
        assert [(e.outcome.client_msg_id, e.outcome.kind) for e in events] == [
            (1, sidecar_pb2.OUTCOME_KIND_ACKED)
        ], events
