"""The demo's handles on the cluster's control APIs (admin, venue, sidecars)."""

from __future__ import annotations

import grpc

from failover import rpc
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sidecar_pb2_grpc, venue_pb2, venue_pb2_grpc
from failover.v1 import sidecar_pb2 as spb


class Control:
    def __init__(self, coordinators: dict[str, str], venue: str, sockets: dict[str, str]) -> None:
        self.coordinators = coordinators
        self._admin = {rid: rpc.channel(a) for rid, a in coordinators.items()}
        self._venue = rpc.channel(venue)
        self._sidecars = {h: rpc.channel(f"unix:{s}") for h, s in sockets.items()}

    def add_coordinator(self, rid: str, address: str) -> None:
        if rid not in self._admin:
            self._admin[rid] = rpc.channel(address)

    async def status(self, exclude: set[str] | None = None) -> apb.ClusterStatus:
        last: grpc.aio.AioRpcError | None = None
        for rid, ch in self._admin.items():
            if exclude and rid in exclude:
                continue
            try:
                st: apb.ClusterStatus = await admin_pb2_grpc.AdminStub(ch).GetStatus(
                    apb.GetStatusRequest(hosts=True), timeout=3
                )
                return st
            except grpc.aio.AioRpcError as exc:
                last = exc
        assert last is not None
        raise last

    async def switch(self, group: str, path: str, reason: str, via: str | None = None) -> apb.ControlResponse:
        rid = via or next(iter(self._admin))
        resp: apb.ControlResponse = await admin_pb2_grpc.AdminStub(self._admin[rid]).Switch(
            apb.SwitchRequest(group=group, path=path, reason=reason, operator="demo"), timeout=10
        )
        return resp

    async def fault(self, gateway: str, kind: venue_pb2.FaultKind, session: str = "") -> None:
        await venue_pb2_grpc.VenueControlStub(self._venue).InjectFault(
            venue_pb2.FaultRequest(gateway=gateway, session=session, kind=kind),
            timeout=5,  # type: ignore[arg-type]
        )

    async def counters(self) -> venue_pb2.Counters:
        c: venue_pb2.Counters = await venue_pb2_grpc.VenueControlStub(self._venue).GetCounters(
            venue_pb2.CountersRequest(), timeout=5
        )
        return c

    async def sidecar(self, host: str) -> spb.SidecarLocalStatus:
        st: spb.SidecarLocalStatus = await sidecar_pb2_grpc.SidecarStub(self._sidecars[host]).GetStatus(
            spb.SidecarStatusRequest(), timeout=3
        )
        return st

    async def close(self) -> None:
        for ch in [*self._admin.values(), self._venue, *self._sidecars.values()]:
            await ch.close(None)
