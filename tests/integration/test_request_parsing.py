"""Requests parsed inside the handler: ``rpc.add_service`` and ``rpc.ParseRequests``.

A real grpc.aio server over loopback; the processes' own servers are checked from
outside by ``tests/sidecar_integration/test_undecodable_requests.py``.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from failover import rpc
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc

GARBAGE = b"\xff\xff\xff\xff\x0f"


class _Seen(rpc.HandlerWrapper):
    """An interceptor after ParseRequests: records what type of request it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.types: list[type] = []

    def wrap(self, method: str, behaviour: rpc.Behaviour) -> rpc.Behaviour:
        async def seen(request: Any, context: Any) -> Any:
            self.types.append(type(request))
            return await rpc.run_behaviour(behaviour, request, context)

        return seen


class _Sidecar(sidecar_pb2_grpc.SidecarServicer):  # type: ignore[misc]
    async def GetRoute(self, request: spb.GetRouteRequest, context: Any) -> spb.Route:
        return spb.Route(group=request.group)


async def _serve(server: grpc.aio.Server) -> tuple[grpc.aio.Channel, int]:
    port = rpc.bind(server, "127.0.0.1:0")
    await server.start()
    return rpc.channel(f"127.0.0.1:{port}"), port


@pytest.mark.parametrize("how", ["add_service", "ParseRequests"])
async def test_a_body_that_does_not_parse_is_invalid_argument_and_a_good_one_is_served(how: str) -> None:
    seen = _Seen()
    if how == "add_service":
        server = rpc.make_server()
        rpc.add_service(server, sidecar_pb2_grpc.add_SidecarServicer_to_server, _Sidecar())
    else:
        server = rpc.make_server(interceptors=[rpc.ParseRequests(), seen])
        sidecar_pb2_grpc.add_SidecarServicer_to_server(_Sidecar(), server)
    channel, _ = await _serve(server)
    try:
        raw = channel.unary_unary(
            "/failover.v1.Sidecar/GetRoute", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await raw(GARBAGE, timeout=5)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert exc.value.details() == (
            "the request to failover.v1.Sidecar/GetRoute does not parse as its message"
        )
        route = await sidecar_pb2_grpc.SidecarStub(channel).GetRoute(
            spb.GetRouteRequest(group="g"), timeout=5
        )
        assert route.group == "g"
        if how == "ParseRequests":  # the interceptor after it saw a message, not bytes
            assert seen.types == [spb.GetRouteRequest]
    finally:
        await channel.close()
        await server.stop(None)


async def test_generated_code_that_registers_no_named_handlers_is_refused() -> None:
    def old_style_add(servicer: Any, server: Any) -> None:
        server.add_generic_rpc_handlers(())

    with pytest.raises(RuntimeError, match="regenerate"):
        rpc.add_service(rpc.make_server(), old_style_add, object())
