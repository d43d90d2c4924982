"""A strategy connection that never says who it is is closed at ``listen.hello_timeout_ms``.

Found from outside: connections to the framed socket and ``Sidecar.Relay`` streams that
sent nothing were held open for ever, each holding a file descriptor (and, for gRPC, a
handler task) of the sidecar on every trading host.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc
from failover.wire.frames import FrameReader
from tests.framed.conftest import WAIT_S, FramedRig

SHORT = {"listen": {"hello_timeout_ms": 200}}


@pytest.mark.parametrize("rig", [SHORT], indirect=True)
async def test_a_silent_framed_connection_is_closed_with_a_reason(rig: FramedRig) -> None:
    reader, writer = await asyncio.open_unix_connection(rig.framed_socket)
    try:
        frames: list[bytes] = []
        cut = FrameReader()
        async with asyncio.timeout(WAIT_S):
            while chunk := await reader.read(65536):
                frames += cut.feed(chunk)
        assert frames, "closed without a reason frame"
        last = spb.RelayEvent.FromString(frames[-1])
        assert last.WhichOneof("kind") == "closed", last
        assert "no open{strategy_id} within 200 ms" in last.closed.reason, last.closed.reason
        assert not rig.app.framed.connections
    finally:
        writer.close()


@pytest.mark.parametrize("rig", [SHORT], indirect=True)
async def test_a_silent_relay_stream_ends_with_a_status(rig: FramedRig) -> None:
    async with grpc.aio.insecure_channel(f"unix:{rig.grpc_socket}") as channel:
        call = sidecar_pb2_grpc.SidecarStub(channel).Relay()
        try:
            async with asyncio.timeout(WAIT_S):
                await call.read()
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
            assert "no open{strategy_id} within 200 ms" in (exc.details() or ""), exc.details()
        else:
            raise AssertionError("the stream gave an event instead of ending")
        finally:
            call.cancel()


@pytest.mark.parametrize("rig", [SHORT], indirect=True)
async def test_a_strategy_that_opened_is_not_bound_by_the_hello_deadline(rig: FramedRig) -> None:
    from failover_client import FramedRelay, OutcomeKind

    from tests.sidecar_integration.harness import GROUP, STRATEGY

    relay = await FramedRelay.connect(rig.framed_socket, STRATEGY)
    try:
        await asyncio.sleep(0.4)  # twice the hello deadline, idle after the open
        assert not relay.closed.is_set(), relay.error
        assert (await asyncio.wait_for(relay.send(GROUP, b'{"n":1}'), WAIT_S)).kind == OutcomeKind.ACKED
    finally:
        await relay.close()
