"""The gRPC control service through a real grpc.aio channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failover import rpc
from failover.v1 import venue_pb2, venue_pb2_grpc
from failover.venue.control import SERVICE_NAME
from failover.venue.server import Venue

from .helpers import Connect


@pytest.fixture
async def channel(venue: Venue) -> AsyncIterator[grpc.aio.Channel]:
    async with rpc.channel(venue.control_address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> venue_pb2_grpc.VenueControlStub:
    return venue_pb2_grpc.VenueControlStub(channel)


async def expect_status(call, code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value
    details = info.value.details() or ""
    for word in words:
        assert word in details
    return details


async def test_health_is_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_inject_fault_and_counters(stub, connect: Connect) -> None:
    client = await connect("primary", "host-a")
    reply = await stub.InjectFault(
        venue_pb2.FaultRequest(gateway="primary", kind=venue_pb2.FAULT_KIND_SLOW, delay_ms=20), timeout=5
    )
    assert "slow" in reply.message
    await stub.InjectFault(
        venue_pb2.FaultRequest(gateway="backup", session="host-a", kind=venue_pb2.FAULT_KIND_STALL), timeout=5
    )
    client.new("c1")
    await client.expect("ack")
    counters = await stub.GetCounters(venue_pb2.CountersRequest(), timeout=5)
    primary, backup = counters.gateways
    assert (primary.name, primary.logons, dict(primary.logons_by_session)) == ("primary", 1, {"host-a": 1})
    assert primary.faults == ["slow(20ms)"] and backup.faults == ["stall@host-a"]
    assert primary.address.startswith("127.0.0.1:") and primary.connections_opened == 1
    assert (counters.orders, counters.duplicates, counters.open_orders) == (1, 0, 1)
    await stub.InjectFault(
        venue_pb2.FaultRequest(gateway="backup", kind=venue_pb2.FAULT_KIND_RECOVER), timeout=5
    )
    counters = await stub.GetCounters(venue_pb2.CountersRequest(), timeout=5)
    assert list(counters.gateways[1].faults) == []


async def test_send_event(stub, connect: Connect) -> None:
    client = await connect("backup", "host-a")
    client.new("c1")
    await client.expect("ack")
    reply = await stub.SendEvent(
        venue_pb2.VenueEventRequest(kind="fill", client_order_id="c1", quantity=2), timeout=5
    )
    assert (reply.gateway, reply.session) == ("backup", "host-a")
    await client.expect("fill", clordid="c1", qty=2)
    await expect_status(
        stub.SendEvent(
            venue_pb2.VenueEventRequest(kind="unsolicited_cancel", client_order_id="c1"), timeout=5
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "client_order_id",
        "filled",
    )


async def test_errors_name_the_field(stub, connect: Connect) -> None:
    await connect("primary", "host-a")
    fault = venue_pb2.FaultRequest
    await expect_status(
        stub.InjectFault(fault(gateway="nope", kind=venue_pb2.FAULT_KIND_STALL), timeout=5),
        grpc.StatusCode.NOT_FOUND,
        "gateway 'nope'",
        "primary, backup",
    )
    await expect_status(
        stub.InjectFault(
            fault(gateway="primary", session="ghost", kind=venue_pb2.FAULT_KIND_STALL), timeout=5
        ),
        grpc.StatusCode.NOT_FOUND,
        "session 'ghost'",
    )
    await expect_status(
        stub.InjectFault(fault(gateway="primary"), timeout=5), grpc.StatusCode.INVALID_ARGUMENT, "kind"
    )
    await expect_status(
        stub.InjectFault(fault(gateway="primary", kind=venue_pb2.FAULT_KIND_SLOW), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "delay_ms",
    )
    event = venue_pb2.VenueEventRequest
    await expect_status(
        stub.SendEvent(event(kind="fill", client_order_id="missing", quantity=1), timeout=5),
        grpc.StatusCode.NOT_FOUND,
        "client_order_id 'missing'",
    )
    await expect_status(
        stub.SendEvent(event(kind="explode", client_order_id="c1"), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "kind",
    )
    await expect_status(
        stub.SendEvent(event(kind="fill", client_order_id="c1"), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "quantity",
    )
    await expect_status(
        stub.SendEvent(event(kind="fill", quantity=1), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "client_order_id",
    )
