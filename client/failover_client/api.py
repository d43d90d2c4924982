"""The library strategies import: watch the route, or send messages and get an outcome each.

    async with await Sidecar.connect("/tmp/failover-sidecar-h1.sock", "s1") as sc:
        route = await sc.route("cme-orders")
        outcome = await sc.send("cme-orders", b'{"sym":"ESZ6","qty":1}')
        if outcome.kind == OutcomeKind.IN_DOUBT: ...

Every ``send`` resolves to exactly one Outcome. When the stream to the sidecar
breaks (or the strategy closes), every message still waiting is reported
IN_DOUBT locally (it may or may not have reached the venue: ask
``resolve_in_doubt`` later); a message submitted after that gets NO_PATH
(nothing was sent). A second outcome for one message is never returned: it is
counted, logged and put on ``events`` as a ``duplicate_outcome`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType

import grpc

from failover import rpc
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc
from failover_client.liveness import PingClock
from failover_client.outcomes import DUPLICATE_OUTCOME, OutcomeBook, OutcomeKind

__all__ = ["DUPLICATE_OUTCOME", "Outcome", "OutcomeKind", "Resolution", "Route", "Sidecar", "VenueEvent"]

log = logging.getLogger(__name__)

Outcome = spb.Outcome
Resolution = spb.Resolution
Route = spb.Route
VenueEvent = spb.VenueEvent

SIDECAR_DEAD_AFTER_MS = 2000
"""Nothing heard from the sidecar for this long ends the stream (its waiting messages IN_DOUBT).

Bounded twice: by the channel's HTTP/2 keepalive pings (idle or not), and, while
messages wait, by the library's own ping on the stream (``PingClock``), whose timeout
does not wait for the ping to be written: gRPC core's does, and a paused sidecar whose
receive buffer is full never lets it be written.
"""


def _target(address: str) -> str:
    if address.startswith(("unix:", "ipv4:", "ipv6:", "dns:")):
        return address
    return f"unix:{address}" if address.startswith("/") or ":" not in address else address


def _never_connected(exc: grpc.aio.AioRpcError) -> bool:
    """gRPC failed the call before it had a transport to write on (sidecar socket absent or
    refusing): its requests never left this process."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (exc.details() or "").startswith(
        "failed to connect to all addresses"
    )


class Sidecar(OutcomeBook):
    """One strategy's connection to its host's sidecar. Create with ``await Sidecar.connect(...)``.

    Every ``submit``/``send`` resolves exactly once, whatever happens to the stream
    (it breaks, the library fails, the strategy closes): see ``_read`` and ``close``.
    """

    def __init__(self, channel: grpc.aio.Channel, strategy_id: str) -> None:
        super().__init__(strategy_id)
        self._channel = channel
        self._stub = sidecar_pb2_grpc.SidecarStub(channel)
        self._out: asyncio.Queue[spb.RelayRequest | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self._closing = False
        self._close_done = asyncio.Event()
        self.error: str = ""
        self._started = False
        half = SIDECAR_DEAD_AFTER_MS / 2000
        self._alive = PingClock(half, half)
        self._timer: asyncio.TimerHandle | None = None
        self._call: grpc.aio.StreamStreamCall | None = None  # type: ignore[type-arg]
        self._silent = False

    @classmethod
    async def connect(cls, address: str, strategy_id: str) -> Sidecar:
        """Open the channel; the relay stream opens with the first message sent.

        A paused or hung sidecar keeps its socket open: HTTP/2 pings, answered by its
        gRPC core, bound how long that goes unnoticed (``SIDECAR_DEAD_AFTER_MS``).
        """
        return cls(
            rpc.channel(_target(address), options=rpc.liveness_options(SIDECAR_DEAD_AFTER_MS)), strategy_id
        )

    def _start(self) -> None:
        self._started = True
        self._out.put_nowait(spb.RelayRequest(open=spb.RelayOpen(strategy_id=self.strategy_id)))

        async def requests() -> AsyncIterator[spb.RelayRequest]:
            while True:
                r = await self._out.get()
                if r is None:
                    return
                yield r

        call = self._call = self._stub.Relay(requests())
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read(call), name="failover-relay")
        self._alive.heard = loop.time()
        self._timer = loop.call_at(self._alive.heard + self._alive.every_s, self._check_alive)

    def _check_alive(self) -> None:
        """While messages wait: ping after a silence, end the stream when the ping goes unanswered."""
        self._timer = None
        if self.closed.is_set():
            return
        loop = asyncio.get_running_loop()
        verdict, at = self._alive.check(loop.time(), owed=bool(self._pending))
        if verdict == "dead":
            self.error = self._alive.silence()
            self._silent = True
            log.warning("strategy %s: %s; ending the relay stream", self.strategy_id, self.error)
            if self._call is not None:
                self._call.cancel()
            if self._reader is not None:
                self._reader.cancel()
            return
        if verdict == "ping":
            self._out.put_nowait(spb.RelayRequest(ping=spb.RelayPing(seq=self._alive.seq)))
        self._timer = loop.call_at(at, self._check_alive)

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:  # type: ignore[type-arg]
        """Deliver outcomes and events until the stream ends; then resolve whatever is still waiting.

        The resolution is in ``finally``, so it also happens when the task is
        cancelled (``close``) or fails with something other than a gRPC error.
        """
        kind, why = spb.OUTCOME_KIND_IN_DOUBT, "stream to the sidecar ended"
        received = False
        clock, alive = asyncio.get_running_loop().time, self._alive
        try:
            async for ev in call:
                received = True
                alive.heard = clock()
                what = ev.WhichOneof("kind")
                if what == "outcome":
                    self._on_outcome(ev.outcome)
                elif what == "venue_event":
                    self.events.put_nowait(ev.venue_event)
                # "pong": hearing anything is the answer (``PingClock.heard``)
        except grpc.aio.AioRpcError as exc:
            self.error = f"{exc.code().name}: {exc.details()}"
            why = "stream to the sidecar broke"
            if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT):
                # Refused at open (unknown strategy, bad first message): nothing was sent anywhere.
                kind, why = spb.OUTCOME_KIND_REJECTED, "the sidecar refused the stream"
            elif not received and _never_connected(exc):
                # The call found no connection to start on: nothing was written, nothing sent.
                kind, why = spb.OUTCOME_KIND_NO_PATH, "not sent: the sidecar is not reachable"
        except asyncio.CancelledError:
            closed_here = "the client closed before the outcome arrived"
            why = "stream to the sidecar broke" if self._silent else closed_here
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            why = "the client library failed reading the stream"
            log.exception("relay stream of strategy %s failed", self.strategy_id)
        finally:
            self.closed.set()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._settle_all(kind, f"{why}: {self.error}" if self.error else why)

    def submit(
        self, group: str, payload: bytes | str, *, msg_id: int | None = None, cancel_of: int | None = None
    ) -> tuple[int, asyncio.Future[spb.Outcome]]:
        """Queue one message; returns its id and a future for its one outcome.

        Resolved at once, with nothing sent, after ``close`` or once the stream has
        ended (NO_PATH), and for an id still waiting for its outcome (REJECTED).
        """
        mid = msg_id if msg_id is not None else self.next_id()
        fut: asyncio.Future[spb.Outcome] = asyncio.get_running_loop().create_future()
        refusal = self._refusal(mid, self._closing, self.closed.is_set(), self.error)
        if refusal is not None:
            fut.set_result(spb.Outcome(client_msg_id=mid, kind=refusal[0], reason=refusal[1]))  # type: ignore[arg-type]
            return mid, fut
        if not self._started:
            self._start()
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

        ACKED/REJECTED: the venue's state. UNKNOWN_TO_VENUE: never received, the
        session that carried it is closed and its path has logged on again (what that
        line held has reached the venue or is gone), so it never will be: safe to send
        again under a new id. STILL_IN_DOUBT: ask again later.
        """
        resp: spb.ResolveInDoubtResponse = await self._stub.ResolveInDoubt(
            spb.ResolveInDoubtRequest(strategy_id=self.strategy_id, group=group, client_msg_ids=msg_ids),
            timeout=10,
        )
        return list(resp.resolutions)

    async def status(self) -> spb.SidecarLocalStatus:
        st: spb.SidecarLocalStatus = await self._stub.GetStatus(spb.SidecarStatusRequest(), timeout=5)
        return st

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stop sending, wait up to ``timeout_s`` for outstanding outcomes, then end the stream.

        Messages still without an outcome then resolve IN_DOUBT (they were written);
        later ``submit`` calls resolve NO_PATH at once. Idempotent: a second call
        waits for the first to finish.
        """
        if self._closing:
            await self._close_done.wait()
            return
        self._closing = True
        try:
            reader = self._reader
            if reader is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        if self._pending:
                            await asyncio.wait(list(self._pending.values()))
                        self._out.put_nowait(None)  # half-close: the sidecar ends the stream
                        await self.closed.wait()
                self._out.put_nowait(None)
                reader.cancel()
                await asyncio.wait({reader})  # unlike `await reader`, never swallows our own cancel
            await self._channel.close(None)
        finally:
            self._close_done.set()

    async def __aenter__(self) -> Sidecar:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
