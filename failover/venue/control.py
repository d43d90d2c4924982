"""gRPC control service of the venue simulator: inject faults, send venue events, read counters.

Errors map to gRPC statuses that name the bad field: unknown gateway, session or
order -> NOT_FOUND; bad kind or missing argument -> INVALID_ARGUMENT; an event on an
order that is no longer open -> FAILED_PRECONDITION; a listener that cannot re-bind
on recover -> UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import grpc

from failover import rpc
from failover.v1 import venue_pb2, venue_pb2_grpc
from failover.venue.book import OrderNotOpen
from failover.venue.core import Delivery, EventKind, NotFound
from failover.venue.faults import FaultKind
from failover.venue.stats import VenueSnapshot

SERVICE_NAME: str = venue_pb2.DESCRIPTOR.services_by_name["VenueControl"].full_name

# proto enum value -> our kind; UNSPECIFIED is deliberately absent (INVALID_ARGUMENT)
_FAULT_KINDS: dict[venue_pb2.FaultKind, FaultKind] = {
    venue_pb2.FAULT_KIND_RESET: FaultKind.RESET,
    venue_pb2.FAULT_KIND_STALL: FaultKind.STALL,
    venue_pb2.FAULT_KIND_SLOW: FaultKind.SLOW,
    venue_pb2.FAULT_KIND_LOGON_REFUSED: FaultKind.LOGON_REFUSED,
    venue_pb2.FAULT_KIND_RECOVER: FaultKind.RECOVER,
}
PROTO_FAULT_KINDS: dict[FaultKind, venue_pb2.FaultKind] = {v: k for k, v in _FAULT_KINDS.items()}

Context = grpc.aio.ServicerContext[Any, Any]


class VenueOps(Protocol):
    """What the control service drives (implemented by ``server.Venue``)."""

    def inject_fault(
        self, gateway: str, session: str | None, kind: FaultKind, delay_ms: int = 0
    ) -> Awaitable[str]: ...

    def send_event(self, kind: EventKind, clordid: str, qty: int = 0) -> Delivery: ...

    def snapshot(self) -> VenueSnapshot: ...


def counters_to_proto(snap: VenueSnapshot) -> venue_pb2.Counters:
    return venue_pb2.Counters(
        gateways=[
            venue_pb2.GatewayCounters(
                name=g.name,
                address=g.address,
                connections_opened=g.connections_opened,
                logons=g.logons,
                logons_by_session=g.logons_by_session,
                orders=g.orders,
                duplicates=g.duplicates,
                cancels=g.cancels,
                active_sessions=g.active_sessions,
                faults=g.faults,
            )
            for g in snap.gateways
        ],
        orders=snap.orders,
        duplicates=snap.duplicates,
        open_orders=snap.open_orders,
    )


class VenueControlService(venue_pb2_grpc.VenueControlServicer):  # type: ignore[misc]
    def __init__(self, venue: VenueOps) -> None:
        self._venue = venue

    async def InjectFault(self, request: venue_pb2.FaultRequest, context: Context) -> venue_pb2.FaultResponse:
        kind = _FAULT_KINDS.get(request.kind)
        if kind is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"kind: unsupported fault kind {request.kind}"
            )
        if not request.gateway:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "gateway: required")
        if kind is FaultKind.SLOW and request.delay_ms <= 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "delay_ms: must be > 0 for a slow fault")
        try:
            message = await self._venue.inject_fault(
                request.gateway, request.session or None, kind, request.delay_ms
            )
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except OSError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return venue_pb2.FaultResponse(message=message)

    async def SendEvent(
        self, request: venue_pb2.VenueEventRequest, context: Context
    ) -> venue_pb2.VenueEventResponse:
        try:
            kind = EventKind.parse(request.kind)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"kind: {exc}")
        if not request.client_order_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "client_order_id: required")
        if kind is EventKind.FILL and request.quantity <= 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "quantity: must be > 0 for a fill")
        try:
            delivery = self._venue.send_event(kind, request.client_order_id, request.quantity)
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except OrderNotOpen as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"client_order_id: {exc}")
        return venue_pb2.VenueEventResponse(gateway=delivery.gateway, session=delivery.session)

    async def GetCounters(self, request: venue_pb2.CountersRequest, context: Context) -> venue_pb2.Counters:
        return counters_to_proto(self._venue.snapshot())


async def start_control_server(venue: VenueOps, address: str) -> tuple[grpc.aio.Server, int]:
    """Build, bind and start the control server (with health and reflection); returns it and its port."""
    server = rpc.make_server()
    rpc.add_service(server, venue_pb2_grpc.add_VenueControlServicer_to_server, VenueControlService(venue))
    health = rpc.add_health_and_reflection(server, [SERVICE_NAME])
    port = rpc.bind(server, address)
    await server.start()
    await rpc.mark_serving(health, [SERVICE_NAME], True)
    return server, port
