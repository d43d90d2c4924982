"""A newer connection of the same strategy takes its events over; the one it replaces is
closed, so what it still waits for gets an outcome (IN_DOUBT in its library).

Found from outside: connection A of strategy s4, then a second connection that sent only
``open{s4}``; A's next order was booked by the venue and acked, but A never heard of it
(the ack went to the second connection's sink) and A was never closed: its ``send``
waited without end. Every pairing of the gRPC stream and the framed socket did the same.
"""

from __future__ import annotations

import asyncio

import pytest
from failover_client import FramedRelay, OutcomeKind, Sidecar

from tests.framed.conftest import WAIT_S, FramedRig
from tests.sidecar_integration.harness import GROUP, STRATEGY

ACKED, IN_DOUBT = OutcomeKind.ACKED, OutcomeKind.IN_DOUBT


async def _connect(rig: FramedRig, transport: str) -> Sidecar | FramedRelay:
    if transport == "framed":
        return await FramedRelay.connect(rig.framed_socket, STRATEGY)
    return await Sidecar.connect(rig.grpc_socket, STRATEGY)


@pytest.mark.parametrize("first", ["framed", "grpc"])
@pytest.mark.parametrize("second", ["framed", "grpc"])
async def test_the_replaced_connection_is_closed_and_what_it_waits_for_resolves(
    rig: FramedRig, first: str, second: str
) -> None:
    a = await _connect(rig, first)
    b = None
    try:
        assert (await asyncio.wait_for(a.send(GROUP, b'{"n":1}'), WAIT_S)).kind == ACKED
        b = await _connect(rig, second)
        # The takeover happens when the sidecar reads b's hello: b's first order proves it.
        assert (await asyncio.wait_for(b.send(GROUP, b'{"n":2}'), WAIT_S)).kind == ACKED
        try:
            await asyncio.wait_for(a.closed.wait(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"the replaced {first} connection was not closed") from None
        late = await asyncio.wait_for(a.submit(GROUP, b'{"n":3}')[1], WAIT_S)
        assert late.kind != ACKED, late  # nothing a closed connection sends is written
        assert "replaced by a newer connection" in (a.error or "") + late.reason, (a.error, late)
        assert (await asyncio.wait_for(b.send(GROUP, b'{"n":4}'), WAIT_S)).kind == ACKED
    finally:
        await a.close()
        if b is not None:
            await b.close()
