"""The library strategies import: watch the route, or send messages and get an outcome each.

    async with await Sidecar.connect("/tmp/failover-sidecar-h1.sock", "s1") as sc:
        route = await sc.route("cme-orders")
        outcome = await sc.send("cme-orders", b'{"sym":"ESZ6","qty":1}')
        if outcome.kind == OutcomeKind.IN_DOUBT: ...

Every ``send`` resolves to exactly one Outcome. When the stream to the sidecar
breaks, every message still waiting is reported IN_DOUBT locally (it may or
may not have reached the venue: ask ``resolve_in_doubt`` later).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from types import TracebackType

import grpc

from failover import rpc
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc

Outcome = spb.Outcome
Resolution = spb.Resolution
Route = spb.Route
VenueEvent = spb.VenueEvent


class OutcomeKind:
    ACKED = spb.OUTCOME_KIND_ACKED
    REJECTED = spb.OUTCOME_KIND_REJECTED
    IN_DOUBT = spb.OUTCOME_KIND_IN_DOUBT
    NO_PATH = spb.OUTCOME_KIND_NO_PATH

    @staticmethod
    def name(kind: int) -> str:
        return spb.OutcomeKind.Name(kind).removeprefix("OUTCOME_KIND_")  # type: ignore[arg-type]


def _target(address: str) -> str:
    if address.startswith(("unix:", "ipv4:", "ipv6:", "dns:")):
        return address
    return f"unix:{address}" if address.startswith("/") or ":" not in address else address


class Sidecar:
    """One strategy's connection to its host's sidecar. Create with ``await Sidecar.connect(...)``."""

    def __init__(self, channel: grpc.aio.Channel, strategy_id: str) -> None:
        self._channel = channel
        self._stub = sidecar_pb2_grpc.SidecarStub(channel)
        self.strategy_id = strategy_id
        # Ids unique per strategy across reconnects and restarts: microseconds at connect, then +1.
        self._ids = itertools.count(time.time_ns() // 1000)
        self._pending: dict[int, asyncio.Future[spb.Outcome]] = {}
        self._out: asyncio.Queue[spb.RelayRequest | None] = asyncio.Queue()
        self.events: asyncio.Queue[spb.VenueEvent] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.error: str = ""
        self._started = False

    @classmethod
    async def connect(cls, address: str, strategy_id: str) -> Sidecar:
        """Open the channel; the relay stream opens with the first message sent."""
        return cls(rpc.channel(_target(address)), strategy_id)

    def _start(self) -> None:
        self._started = True
        self._out.put_nowait(spb.RelayRequest(open=spb.RelayOpen(strategy_id=self.strategy_id)))

        async def requests() -> AsyncIterator[spb.RelayRequest]:
            while True:
                r = await self._out.get()
                if r is None:
                    return
                yield r

        call = self._stub.Relay(requests())
        self._reader = asyncio.get_running_loop().create_task(self._read(call))

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:  # type: ignore[type-arg]
        try:
            async for ev in call:
                if ev.WhichOneof("kind") == "outcome":
                    fut = self._pending.pop(ev.outcome.client_msg_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(ev.outcome)
                else:
                    self.events.put_nowait(ev.venue_event)
        except grpc.aio.AioRpcError as exc:
            self.error = f"{exc.code().name}: {exc.details()}"
            # Refused at open (unknown strategy, bad first message): nothing was sent anywhere.
            refused = exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
        else:
            refused = False
        finally:
            self.closed.set()
        kind = spb.OUTCOME_KIND_REJECTED if refused else spb.OUTCOME_KIND_IN_DOUBT
        why = "the sidecar refused the stream" if refused else "stream to the sidecar broke"
        for msg_id, fut in list(self._pending.items()):
            if not fut.done():
                fut.set_result(
                    spb.Outcome(client_msg_id=msg_id, kind=kind, reason=f"{why}: {self.error}".strip())
                )
        self._pending.clear()

    def next_id(self) -> int:
        return next(self._ids)

    def submit(
        self, group: str, payload: bytes | str, *, msg_id: int | None = None, cancel_of: int | None = None
    ) -> tuple[int, asyncio.Future[spb.Outcome]]:
        """Queue one message; returns its id and a future for its outcome."""
        mid = msg_id if msg_id is not None else self.next_id()
        if not self._started:
            self._start()
        fut: asyncio.Future[spb.Outcome] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            fut.set_result(
                spb.Outcome(
                    client_msg_id=mid,
                    kind=spb.OUTCOME_KIND_IN_DOUBT,
                    reason=f"not connected {self.error}".strip(),
                )
            )
            return mid, fut
        self._pending[mid] = fut
        m = spb.RelayMessage(
            group=group,
            client_msg_id=mid,
            payload=payload.encode() if isinstance(payload, str) else payload,
            kind=spb.MESSAGE_KIND_CANCEL if cancel_of else spb.MESSAGE_KIND_NEW_ORDER,
            cancel_msg_id=cancel_of or 0,
        )
        self._out.put_nowait(spb.RelayRequest(message=m))
        return mid, fut

    async def send(
        self, group: str, payload: bytes | str, *, msg_id: int | None = None, cancel_of: int | None = None
    ) -> spb.Outcome:
        """Send one message and wait for its one outcome."""
        _, fut = self.submit(group, payload, msg_id=msg_id, cancel_of=cancel_of)
        return await fut

    async def route(self, group: str) -> spb.Route:
        r: spb.Route = await self._stub.GetRoute(spb.GetRouteRequest(group=group), timeout=5)
        return r

    async def watch(self, groups: list[str] | None = None) -> AsyncIterator[spb.Route]:
        """The effective route of each group now, then every change."""
        async for r in self._stub.WatchRoute(spb.WatchRouteRequest(groups=groups or [])):
            yield r

    async def resolve_in_doubt(self, group: str, msg_ids: list[int]) -> list[spb.Resolution]:
        """Ask what became of messages reported IN_DOUBT (works after a sidecar restart too).

        ACKED/REJECTED: the venue's state. UNKNOWN_TO_VENUE: never received, and the
        session that carried it is closed, so it never will be: safe to send again
        under a new id. STILL_IN_DOUBT: ask again later.
        """
        resp: spb.ResolveInDoubtResponse = await self._stub.ResolveInDoubt(
            spb.ResolveInDoubtRequest(strategy_id=self.strategy_id, group=group, client_msg_ids=msg_ids),
            timeout=10,
        )
        return list(resp.resolutions)

    async def status(self) -> spb.SidecarLocalStatus:
        st: spb.SidecarLocalStatus = await self._stub.GetStatus(spb.SidecarStatusRequest(), timeout=5)
        return st

    async def close(self) -> None:
        self._out.put_nowait(None)
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed.wait()), 2.0)
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._channel.close(None)

    async def __aenter__(self) -> Sidecar:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
