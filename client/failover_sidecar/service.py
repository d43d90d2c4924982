"""The local Sidecar gRPC service strategies talk to (a Unix socket by default)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from failover import rpc
from failover.aio import cancel_and_wait
from failover.log_limit import OUTSIDE_INPUT
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc
from failover_sidecar.agent import Agent
from failover_sidecar.orders import STOPPING, OrderPath, RelayError, shown

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 8 * 1024
RELAY_QUEUE = 10_000
# A client that closed its sending side waits this long at most for the outcomes of what
# it sent (each is due well within it: the NO_PATH wait, a reply or confirmation timeout).
HALF_CLOSED_WAIT_S = 60.0
MAX_WATCH_GROUPS = 1000
"""Groups one WatchRoute may name (a host serves far fewer)."""
RELAY_GARBLED = rpc.does_not_parse("failover.v1.Sidecar/Relay")


class SidecarService(sidecar_pb2_grpc.SidecarServicer):  # type: ignore[misc]
    def __init__(self, agent: Agent, orders: OrderPath) -> None:
        self._agent = agent
        self._orders = orders
        self._relay_queues: set[asyncio.Queue[spb.RelayEvent | None]] = set()

    def end_relays(self) -> None:
        """The sidecar stops: each relay stream sends what is queued, then ends UNAVAILABLE
        (called once every message has its outcome, so nothing is left waiting)."""
        for q in self._relay_queues:
            with contextlib.suppress(asyncio.QueueFull):  # a full queue ends its stream anyway
                q.put_nowait(_END)

    async def GetRoute(self, request: spb.GetRouteRequest, context: Any) -> spb.Route:
        if request.group not in self._agent.cfg.groups:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"group: unknown group {shown(request.group)}")
        return self._agent.route(request.group)

    async def WatchRoute(self, request: spb.WatchRouteRequest, context: Any) -> AsyncIterator[spb.Route]:
        if len(request.groups) > MAX_WATCH_GROUPS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"groups: {len(request.groups)} groups, at most {MAX_WATCH_GROUPS}",
            )
        groups = list(dict.fromkeys(request.groups)) or list(self._agent.cfg.groups)
        unknown = [g for g in groups if g not in self._agent.cfg.groups]
        if unknown:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"groups: unknown group {shown(unknown[0])}")
        changed: asyncio.Queue[str] = asyncio.Queue()

        def listener(g: str) -> None:
            if g in groups:
                changed.put_nowait(g)

        self._agent.route_listeners.append(listener)
        last: dict[str, bytes] = {}
        try:
            for g in groups:
                r = self._agent.route(g)
                last[g] = _key(r)
                yield r
            while True:
                g = await changed.get()
                r = self._agent.route(g)
                k = _key(r)
                if last.get(g) != k:
                    last[g] = k
                    yield r
        finally:
            self._agent.route_listeners.remove(listener)

    async def Relay(
        self, requests: AsyncIterator[spb.RelayRequest], context: Any
    ) -> AsyncIterator[spb.RelayEvent]:
        it = requests.__aiter__()
        hello_ms = self._agent.cfg.listen.hello_timeout_ms
        try:
            first = await asyncio.wait_for(it.__anext__(), hello_ms / 1000)
        except StopAsyncIteration:
            return
        except TimeoutError:
            log.warning("a relay stream sent no open within %d ms; ended", hello_ms, extra=OUTSIDE_INPUT)
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, no_open(hello_ms))
        except DecodeError:
            log.warning("a relay request that does not parse; answered INVALID_ARGUMENT", extra=OUTSIDE_INPUT)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, RELAY_GARBLED)
        if first.WhichOneof("kind") != "open":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be open{strategy_id}"
            )
        sid = first.open.strategy_id
        if sid not in self._agent.cfg.strategies:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"strategy_id: {shown(sid)} is not allowed on host {self._agent.cfg.host_id}",
            )
        out: asyncio.Queue[spb.RelayEvent | None] = asyncio.Queue(maxsize=RELAY_QUEUE)
        overflow = asyncio.Event()

        def sink(ev: spb.RelayEvent) -> None:
            try:
                out.put_nowait(ev)
            except asyncio.QueueFull:
                # Never drop an outcome silently: end the stream; the client library
                # reports what it still waits for as IN_DOUBT, and ResolveInDoubt tells.
                log.error(
                    "strategy %s does not read its outcomes: %d queued; closing its stream", sid, RELAY_QUEUE
                )
                overflow.set()

        replaced_by = ""

        def replaced(reason: str) -> None:
            nonlocal replaced_by
            replaced_by = reason
            with contextlib.suppress(asyncio.QueueFull):  # a full queue ends the stream anyway
                out.put_nowait(_END)

        self._orders.attach(sid, sink, replaced)
        self._relay_queues.add(out)
        garbled = False
        misused = ""
        owed_at_end = 0

        async def reader() -> None:
            nonlocal garbled, misused, owed_at_end
            try:
                async for req in it:
                    if replaced_by:
                        continue  # a replaced stream ends: nothing more of it is written
                    kind = req.WhichOneof("kind")
                    if kind == "ping":  # the library's liveness check while messages wait
                        sink(spb.RelayEvent(pong=spb.RelayPong(seq=req.ping.seq)))
                        continue
                    if kind != "message":
                        # One stream carries one strategy (the framed socket closes too).
                        misused = f"bad request: expected a message, got {kind or 'an empty request'}"
                        return
                    m = req.message
                    if len(m.payload) > MAX_PAYLOAD_BYTES:
                        sink(
                            _refused(
                                m, f"payload: {len(m.payload)} bytes, over the {MAX_PAYLOAD_BYTES} limit"
                            )
                        )
                        continue
                    try:
                        self._orders.submit(sid, m)
                    except RelayError as exc:
                        sink(_refused(m, str(exc)))
                # The client closed its side: what it sent still gets its outcomes here.
                if not replaced_by:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._orders.all_delivered(sid), HALF_CLOSED_WAIT_S)
                    owed_at_end = self._orders.owed(sid)
            except DecodeError:
                # Outcomes of what came before still reach the strategy, then the
                # stream ends with a status saying why (not OK, as if it had closed).
                garbled = True
            finally:
                with contextlib.suppress(asyncio.QueueFull):
                    out.put_nowait(None)

        task = asyncio.create_task(reader())
        try:
            while not overflow.is_set():
                ev = await out.get()
                if ev is _END:
                    if replaced_by:
                        log.warning("relay stream of strategy %s closed: %s", sid, replaced_by)
                        await context.abort(grpc.StatusCode.ABORTED, replaced_by)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)
                if ev is None:
                    if garbled:
                        # DATA_LOSS, not INVALID_ARGUMENT: messages before it may be on
                        # their way to a venue, and the library reads INVALID_ARGUMENT
                        # as a refusal at open (nothing sent, so REJECTED).
                        log.warning(
                            "strategy %s sent a relay request that does not parse", sid, extra=OUTSIDE_INPUT
                        )
                        await context.abort(grpc.StatusCode.DATA_LOSS, RELAY_GARBLED)
                    if misused:
                        # Not INVALID_ARGUMENT (the library's refusal at open): what was sent
                        # before may be at a venue.
                        log.warning("relay stream of strategy %s: %s", sid, misused, extra=OUTSIDE_INPUT)
                        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, misused)
                    if owed_at_end:
                        await context.abort(grpc.StatusCode.UNAVAILABLE, _still_owed(owed_at_end))
                    return
                yield ev
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{RELAY_QUEUE} outcomes not read: stream closed (resolve in doubt)",
            )
        finally:
            self._relay_queues.discard(out)
            await cancel_and_wait([task])
            self._orders.detach(sid, sink)

    async def ResolveInDoubt(
        self, request: spb.ResolveInDoubtRequest, context: Any
    ) -> spb.ResolveInDoubtResponse:
        cfg = self._agent.cfg
        if request.strategy_id not in cfg.strategies:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"strategy_id: {shown(request.strategy_id)} is not allowed here",
            )
        if request.group not in cfg.groups:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"group: unknown group {shown(request.group)}")
        if len(request.client_msg_ids) > 10_000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "client_msg_ids: at most 10000 per call")
        res = await self._orders.resolve(request.strategy_id, request.group, list(request.client_msg_ids))
        return spb.ResolveInDoubtResponse(resolutions=res)

    async def GetStatus(self, request: spb.SidecarStatusRequest, context: Any) -> spb.SidecarLocalStatus:
        return status(self._agent, self._orders)


def status(agent: Agent, orders: OrderPath) -> spb.SidecarLocalStatus:
    link = agent.link.status
    st = spb.SidecarLocalStatus(
        host_id=agent.cfg.host_id,
        site=agent.cfg.site,
        replica=link.replica if link.connected else "",
        control_plane_connected=link.connected,
        routes=[agent.route(g) for g in agent.cfg.groups],
        flips=list(agent.flips),
    )
    for k, v in orders.counters.items():
        st.counters[k] = v
    for (g, p), s in agent.sessions.items():
        st.counters[f"connections_opened.{g}.{p}"] = s.connections_opened
    st.counters["coordinator_moves"] = link.moves
    return st


def _still_owed(n: int) -> str:
    return (
        f"{n} messages still without an outcome {HALF_CLOSED_WAIT_S:.0f} s after the client "
        "closed its side: resolve them in doubt"
    )


_END = spb.RelayEvent()  # a relay stream's queue: the sidecar stops (compared by identity)


def no_open(hello_ms: int) -> str:
    """Why a strategy connection that never named its strategy was closed (gRPC and framed)."""
    return f"no open{{strategy_id}} within {hello_ms} ms"


def _refused(m: spb.RelayMessage, reason: str) -> spb.RelayEvent:
    return spb.RelayEvent(
        outcome=spb.Outcome(
            client_msg_id=m.client_msg_id, kind=spb.OUTCOME_KIND_REJECTED, reason=f"sidecar: {reason}"
        )
    )


def _key(r: spb.Route) -> bytes:
    r2 = spb.Route()
    r2.CopyFrom(r)
    del r2.health[:]
    return r2.SerializeToString(deterministic=True)
