"""A handler that ends with a stray ``CancelledError`` still answers its caller.

grpc.aio ends a call whose channel is closed under it with ``asyncio.CancelledError``,
the same exception a cancelled task gets. Escaping a server handler whose own call was
not cancelled, gRPC sends no status, and the caller waits for its deadline (or forever
without one): the forwarded-Switch wait of docs/benchmarks.md, "a forwarded call whose
channel is replaced under it". ``failover.rpc.StrayCancelGuard``, which every
coordinator replica installs, answers such a call UNAVAILABLE (retryable); a call its
caller cancels is still cancelled in the handler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from coordinator.admin_service import AdminService
from failover import rpc
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin

DEADLINE_S = 5.0


async def _stray_unary(request: bytes, context: Any) -> bytes:
    raise asyncio.CancelledError()  # what a call on a closed channel raises


async def _stray_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise asyncio.CancelledError()


class _Server:
    def __init__(self) -> None:
        self.hang_started = asyncio.Event()
        self.hang_cancelled = asyncio.Event()

    async def hang(self, request: bytes, context: Any) -> bytes:
        self.hang_started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.hang_cancelled.set()
            raise
        return b""

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "test.Stray",
            {
                "Unary": grpc.unary_unary_rpc_method_handler(_stray_unary),
                "Stream": grpc.unary_stream_rpc_method_handler(_stray_stream),
                "Hang": grpc.unary_unary_rpc_method_handler(self.hang),
            },
        )


@pytest.fixture
async def served() -> Any:
    impl = _Server()
    server = rpc.make_server(interceptors=[rpc.StrayCancelGuard()])
    server.add_generic_rpc_handlers((impl.handler(),))
    port = rpc.bind(server, "127.0.0.1:0")
    await server.start()
    channel = rpc.channel(f"127.0.0.1:{port}")
    try:
        yield impl, channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_a_stray_cancel_in_a_unary_handler_is_answered_unavailable(served: Any) -> None:
    _, channel = served
    call = channel.unary_unary("/test.Stray/Unary")
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(b"x", timeout=DEADLINE_S)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert time.monotonic() - start < DEADLINE_S / 2


async def test_a_stray_cancel_in_a_streaming_handler_ends_the_stream_unavailable(served: Any) -> None:
    _, channel = served
    got: list[bytes] = []
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for item in channel.unary_stream("/test.Stray/Stream")(b"x", timeout=DEADLINE_S):
            got.append(item)
    assert got == [b"first"]
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert time.monotonic() - start < DEADLINE_S / 2


async def test_a_call_its_caller_cancels_is_still_cancelled_in_the_handler(served: Any) -> None:
    impl, channel = served
    call = channel.unary_unary("/test.Stray/Hang")(b"x", timeout=DEADLINE_S)
    await asyncio.wait_for(impl.hang_started.wait(), DEADLINE_S)
    call.cancel()
    await asyncio.wait_for(impl.hang_cancelled.wait(), DEADLINE_S)
    assert call.cancelled()


@pytest.mark.cluster
async def test_a_coordinator_answers_a_stray_cancel_unavailable(
    etcd_cluster: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stray(self: AdminService, request: Any, context: Any) -> Any:
        raise asyncio.CancelledError()

    monkeypatch.setattr(AdminService, "GetStatus", stray)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        replica = rs.replicas[0]
        assert replica is not None
        start = time.monotonic()
        async with admin(replica.cfg.advertised) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetStatus(apb.GetStatusRequest(), timeout=DEADLINE_S)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
        assert time.monotonic() - start < DEADLINE_S / 2
    finally:
        await rs.stop_all()
