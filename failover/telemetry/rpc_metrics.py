"""``rpc.server.duration`` and ``rpc.client.duration`` for grpc.aio, by the OpenTelemetry RPC conventions.

Histograms in milliseconds with the attributes ``rpc.system`` (``grpc``),
``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code`` (an int, 0 for OK).
A streaming call is one measurement: from its start to its end status, never
one per message (a sidecar's Sync stream is recorded when it ends, with the
status it ended with).

Why our own interceptors and not opentelemetry-instrumentation-grpc: the release
that matches our SDK (0.66b2) records spans only, no metrics, and brings
opentelemetry-instrumentation and wrapt with it. These record through
:class:`Instruments`' deferred queue, so a call pays a clock read, a dict lookup
and a deque append; the SDK sees the measurement when a reader collects.

Not installed on the sidecar's local strategy server: the order relay has its
own budget (``failover bench relay --compare-metrics``).
"""

from __future__ import annotations

import asyncio
import time
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
from opentelemetry.metrics import Meter

from failover.rpc import Behaviour, HandlerWrapper, run_behaviour
from failover.telemetry.metrics import Instruments

SYSTEM = "grpc"
RpcAttrs = dict[str, str | int]


def split_method(full: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``); anything else -> (``""``, itself)."""
    service, sep, method = full.lstrip("/").rpartition("/")
    return (service, method) if sep else ("", full)


def code_number(code: Any) -> int:
    """A status code as the conventions want it: the integer (StatusCode.OK -> 0)."""
    if isinstance(code, grpc.StatusCode):
        return int(code.value[0])
    return int(code)


class RpcInstruments(Instruments):
    """``Instruments`` with the two RPC duration histograms (a process's metrics extend it)."""

    def __init__(self, meter: Meter) -> None:
        super().__init__(meter)
        self._rpc_attrs: dict[tuple[str, str, int], RpcAttrs] = {}
        self._rpc_server = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of inbound RPCs (a stream: its life)"
        )
        self._rpc_client = meter.create_histogram(
            "rpc.client.duration", unit="ms", description="Duration of outbound RPCs"
        )

    def _rpc_a(self, side: str, full_method: str, code: int) -> RpcAttrs:
        key = (side, full_method, code)
        a = self._rpc_attrs.get(key)
        if a is None:
            service, method = split_method(full_method)
            a = self._rpc_attrs[key] = {
                "rpc.system": SYSTEM,
                "rpc.service": service,
                "rpc.method": method,
                "rpc.grpc.status_code": code,
            }
        return a

    def rpc_server(self, full_method: str, code: int, duration_ms: float) -> None:
        """An inbound call ended with ``code`` after ``duration_ms``."""
        self._record(self._rpc_server.record, duration_ms, self._rpc_a("s", full_method, code))

    def rpc_client(self, full_method: str, code: int, duration_ms: float) -> None:
        """An outbound call ended with ``code`` after ``duration_ms``."""
        self._record(self._rpc_client.record, duration_ms, self._rpc_a("c", full_method, code))

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """What a channel of this process takes to record its calls (``rpc.channel(interceptors=...)``)."""
        return [
            cast(grpc.aio.ClientInterceptor, kind(self))
            for kind in (
                RpcClientMetrics,
                RpcUnaryStreamMetrics,
                RpcStreamUnaryMetrics,
                RpcStreamStreamMetrics,
            )
        ]


class RpcServerMetrics(HandlerWrapper):
    """Times every call of a grpc.aio server into ``rpc.server.duration``.

    Install it first in the server's interceptor list, so a call refused by a later
    interceptor (authorization) is recorded with the status it was refused with.
    The status is the one the handler set or aborted with; a handler that raised
    anything else ends UNKNOWN, a call cancelled under it CANCELLED.
    """

    def __init__(self, metrics: RpcInstruments) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap(self, method: str, behaviour: Behaviour) -> Callable[[Any, Any], Awaitable[Any]]:
        record = self._metrics.rpc_server

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            start = time.perf_counter()
            fallback = grpc.StatusCode.OK
            try:
                return await run_behaviour(behaviour, request, context)
            except CancelledError:  # the peer cancelled, or the server is stopping
                fallback = grpc.StatusCode.CANCELLED
                raise
            except BaseException:  # an abort sets the code itself; anything else is UNKNOWN
                fallback = grpc.StatusCode.UNKNOWN
                raise
            finally:
                code = context.code()
                record(method, code_number(fallback if code is None else code), _ms_since(start))

        return timed


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class RpcClientMetrics(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    """Times every unary call of a grpc.aio channel into ``rpc.client.duration``.

    The call is awaited here (its outcome is cached on it), then handed back as it
    is: the caller sees the same response or the same ``AioRpcError``. Streaming
    calls: :class:`_StreamCallMetrics` (``RpcInstruments.client_interceptors`` gives
    one of each; grpc.aio files an interceptor under one call shape only).
    """

    def __init__(self, metrics: RpcInstruments) -> None:
        self._metrics = metrics

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        start = time.perf_counter()
        name = _name(client_call_details)
        code = grpc.StatusCode.UNKNOWN
        try:
            call = await continuation(client_call_details, request)
            try:
                await call
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            return call
        except CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._metrics.rpc_client(name, code_number(code), _ms_since(start))


# Awaited (grpc.aio runs the next interceptor as a coroutine), though the stubs of two shapes
# say it returns the call itself.
Continuation = Callable[..., Any]


class _StreamCallMetrics:
    """Times a streaming call into ``rpc.client.duration``: one sample when it ends.

    The call is handed back at once; one small task per call waits for its final
    status (``code()`` resolves exactly then, a local cancel included) and records
    it. Nothing runs per message.
    """

    def __init__(self, metrics: RpcInstruments) -> None:
        self._metrics = metrics
        self._watching: set[asyncio.Task[None]] = set()  # referenced until they end

    async def _timed(
        self, continuation: Continuation, details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        start = time.perf_counter()
        name = _name(details)
        try:
            call = await continuation(details, request)
        except CancelledError:
            self._metrics.rpc_client(name, code_number(grpc.StatusCode.CANCELLED), _ms_since(start))
            raise
        except grpc.aio.AioRpcError as exc:
            self._metrics.rpc_client(name, code_number(exc.code()), _ms_since(start))
            raise
        task = asyncio.get_running_loop().create_task(self._when_done(call, name, start))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)
        return call

    async def _when_done(self, call: Any, name: str, start: float) -> None:
        try:
            code = await call.code()
        except CancelledError:  # the loop is closing under a call still open: not an outcome
            return
        self._metrics.rpc_client(name, code_number(code), _ms_since(start))


class RpcUnaryStreamMetrics(_StreamCallMetrics, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await self._timed(continuation, client_call_details, request)


class RpcStreamUnaryMetrics(_StreamCallMetrics, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_unary(
        self,
        continuation: Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await self._timed(continuation, client_call_details, request_iterator)


class RpcStreamStreamMetrics(_StreamCallMetrics, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc,type-arg]
    async def intercept_stream_stream(
        self,
        continuation: Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await self._timed(continuation, client_call_details, request_iterator)


def _name(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)
