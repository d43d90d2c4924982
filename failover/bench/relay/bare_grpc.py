"""The bare gRPC relay: the floor the sidecar's ``Sidecar.Relay`` is compared with.

A child process that does only what any relay over gRPC must: serve
``failover.v1.Sidecar/Relay`` on a Unix socket with grpc.aio (the server options the
sidecar uses), decode each ``RelayRequest``, write a ``new`` order to the venue on one
logged-on session, and stream back ``RelayEvent{outcome ACKED}`` when the venue's ack
arrives. No ledger, no route, no health, no stage timings, no allow-list: what is left
of the sidecar's gRPC relay row above this one is the cost of those. The strategy side
is the same client (``failover_client.api.Sidecar``) for both.

    python -m failover.bench.relay.bare_grpc --socket PATH --gateway HOST:PORT

Prints ``ready`` once it serves; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator
from typing import Any

from failover import rpc
from failover.bench.relay.direct import DirectClient
from failover.bench.serve_child import child_main, until_stopped
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc
from failover.wire import protocol as vp

_ACKED, _REJECTED = spb.OUTCOME_KIND_ACKED, spb.OUTCOME_KIND_REJECTED


class BareRelay(sidecar_pb2_grpc.SidecarServicer):  # type: ignore[misc]
    """Relay only: every other RPC of the service answers UNIMPLEMENTED."""

    def __init__(self, venue: DirectClient) -> None:
        self.venue = venue

    async def Relay(  # noqa: N802 - the generated servicer's name
        self, request_iterator: AsyncIterator[spb.RelayRequest], context: Any
    ) -> AsyncIterator[spb.RelayEvent]:
        events: asyncio.Queue[spb.RelayEvent | None] = asyncio.Queue()

        def answered(mid: int, f: asyncio.Future[vp.Message]) -> None:
            ok = not f.cancelled() and f.exception() is None and f.result()["t"] == vp.MsgType.ACK
            events.put_nowait(
                spb.RelayEvent(
                    outcome=spb.Outcome(client_msg_id=mid, kind=_ACKED if ok else _REJECTED, path="primary")
                )
            )

        async def read() -> None:
            try:
                async for req in request_iterator:
                    if req.WhichOneof("kind") == "message":
                        mid = req.message.client_msg_id
                        self.venue.submit().add_done_callback(functools.partial(answered, mid))
            finally:
                events.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (ev := await events.get()) is not None:
                yield ev
        finally:
            reader.cancel()


async def serve(socket: str, gateway: str) -> None:
    venue = await DirectClient.connect(gateway, "bench-bare-grpc", "bareg-")
    server = rpc.make_server()
    sidecar_pb2_grpc.add_SidecarServicer_to_server(BareRelay(venue), server)
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    try:
        await until_stopped()
    finally:
        await server.stop(0.5)
        await venue.logout()


def main(argv: list[str] | None = None) -> int:
    return child_main(__doc__ or "", "bare_grpc", {"socket": str, "gateway": str}, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
