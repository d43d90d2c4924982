"""The one place gRPC servers and channels are built.

Keepalive settings of servers and clients are chosen together here: a C-core
server rejects client pings more frequent than its ping policy allows (GOAWAY
``too_many_pings``), so both sides read the same constants. Credentials (mTLS,
on the roadmap) will be added here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from failover.log_limit import OUTSIDE_INPUT

if TYPE_CHECKING:  # server-side only: clients (the CLI) do not pay for importing them
    from grpc_health.v1._async import HealthServicer as AioHealthServicer

    from failover.tls import TlsSection

log = logging.getLogger(__name__)

# Client pings every 1 s and gives up 1 s later: a dead TCP peer is noticed in
# about 2 s even when no message is due. The server permits pings that often.
KEEPALIVE_TIME_MS = 1000
KEEPALIVE_TIMEOUT_MS = 1000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# The largest answer a server sends, or a client takes: an operator's status of a large
# fleet. What a server takes in stays at its own limit; a sidecar's snapshot is cut into
# pieces that each fit the replica's stream.max_message_bytes.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_STREAMS = 10_000
# How long one connection attempt (TCP + HTTP/2 SETTINGS) may take: the documented
# 2 s connect bound. gRPC core reads it from ``grpc.min_reconnect_backoff_ms`` (the
# name is historical: it is the minimum *connect timeout*, not a delay), so a small
# value there makes every peer further away than that unreachable.
CONNECT_TIMEOUT_MS = 2000
# Delay before reconnecting after a failed or lost connection: short, so a restarted
# replica is found again quickly; independent of the connect timeout above.
RECONNECT_BACKOFF_INITIAL_MS = 100
RECONNECT_BACKOFF_MAX_MS = 1000

_CLIENT_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Reconnect quickly after a replica restarts, but give each attempt the full
    # connect bound (see CONNECT_TIMEOUT_MS).
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_INITIAL_MS),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
    ("grpc.min_reconnect_backoff_ms", CONNECT_TIMEOUT_MS),
    ("grpc.enable_retries", 0),
    # Each channel owns its connections: closing one channel never disturbs another
    # that targets the same address (seen as hung streams with the global pool).
    ("grpc.use_local_subchannel_pool", 1),
]


def liveness_options(dead_after_ms: int) -> list[tuple[str, int]]:
    """Channel options under which gRPC core itself finds a replica silent for ``dead_after_ms``.

    An HTTP/2 ping goes out every two thirds of ``dead_after_ms``, and the connection
    (and so every stream on it) fails when one stays unanswered for the last third
    (half each below 3 s): nothing heard for ``dead_after_ms`` at most. Pings are answered by the replica's
    gRPC core, not its event loop, so they cost the replica no Python work per stream;
    a SIGSTOPped or dead replica, a stalled link or one direction lost all leave a ping
    unanswered. Each ping still costs the replica tens of microseconds of CPU in gRPC
    core (docs/benchmarks.md, "Idle streams"): the interval is the longer part of the
    budget, so an idle sidecar sends one every 2 s at the default 3 s.
    ``grpc.http2.ping_timeout_ms`` is what bounds an outstanding ping in gRPC core
    (``keepalive_timeout_ms`` alone did not fail the connection), so both are set. The
    replicas' ping policy tolerates any ping rate (``grpc.http2.max_ping_strikes`` 0):
    no GOAWAY ``too_many_pings``.
    """
    # A third, but up to 1 s and at most half: a short dead-after (1 s in the fault tier)
    # must not leave a loaded replica's gRPC core only a few hundred ms to answer.
    timeout = max(1, dead_after_ms // 3, min(1000, dead_after_ms // 2))
    every = max(1, dead_after_ms - timeout)
    return [
        ("grpc.keepalive_time_ms", every),
        ("grpc.keepalive_timeout_ms", timeout),
        ("grpc.http2.ping_timeout_ms", timeout),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


HANDSHAKE_TIMEOUT_MS = 5_000
"""A connection that has not finished the HTTP/2 handshake by then is closed (gRPC core: 120 s)."""


def server_options(
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    max_streams: int = DEFAULT_MAX_STREAMS,
    keepalive_time_ms: int = KEEPALIVE_TIME_MS,
    ping_timeout_ms: int | None = None,
) -> list[tuple[str, int | str]]:
    """Server options whose ping policy accepts the clients' keepalive.

    ``ping_timeout_ms`` closes a connection whose client leaves a ping of ours
    unanswered that long (GOAWAY ``ping_timeout``): a peer that can hear us but
    not be heard. gRPC core bounds a ping by ``grpc.http2.ping_timeout_ms``
    (default 60 s), not by ``grpc.keepalive_timeout_ms``, so without it such a
    connection lives on for as long as our own writes keep flowing.
    """
    opts: list[tuple[str, int | str]] = [
        ("grpc.keepalive_time_ms", keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", ping_timeout_ms or KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max(max_message_bytes, MAX_ANSWER_BYTES)),
        # Per HTTP/2 connection; channels to one address share a connection, so
        # this must stay well above any per-server stream limit we enforce ourselves.
        ("grpc.max_concurrent_streams", max(max_streams, DEFAULT_MAX_STREAMS)),
        ("grpc.so_reuseport", 0),
        ("grpc.server.max_pending_requests", max(max_streams, DEFAULT_MAX_STREAMS)),
        ("grpc.server.max_pending_requests_hard_limit", 2 * max(max_streams, DEFAULT_MAX_STREAMS)),
        # Silent or half-open connections would otherwise hold a descriptor each for 2 minutes.
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
    ]
    if ping_timeout_ms is not None:
        opts.append(("grpc.http2.ping_timeout_ms", ping_timeout_ms))
    return opts


def make_server(
    *,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    max_streams: int = DEFAULT_MAX_STREAMS,
    keepalive_time_ms: int = KEEPALIVE_TIME_MS,
    ping_timeout_ms: int | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
) -> grpc.aio.Server:
    """A grpc.aio server; call inside the running event loop.

    Any interceptor moves every call onto grpc.aio's slower interceptor path (about
    20 µs per unary call here, docs/benchmarks.md): servers on a message hot path
    take none.
    """
    return grpc.aio.server(
        options=server_options(max_message_bytes, max_streams, keepalive_time_ms, ping_timeout_ms),
        interceptors=list(interceptors),
    )


def add_health_and_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> AioHealthServicer:
    """Register standard health checking and reflection; every named service starts SERVING."""
    from grpc_health.v1 import health, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer as AioHealthServicer
    from grpc_reflection.v1alpha import reflection

    servicer = AioHealthServicer()
    add_service(server, health_pb2_grpc.add_HealthServicer_to_server, servicer)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return servicer


async def mark_serving(servicer: AioHealthServicer, service_names: Sequence[str], serving: bool) -> None:
    """Set every named service (and the overall "" service) to SERVING or NOT_SERVING."""
    from grpc_health.v1 import health_pb2

    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *service_names]:
        await servicer.set(name, status)


# A handler's behaviour: (request or request iterator, context) -> its result.
Behaviour = Callable[[Any, Any], Any]

_SHAPES = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Callable[[Behaviour], Behaviour],
    *,
    parse_requests: bool = True,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour replaced by ``wrap(behaviour)``: same call shape, same
    (de)serializers. What a server interceptor returns to run code around every call.
    ``parse_requests=False``: requests reach ``wrap``'s behaviour as bytes."""
    parse = handler.request_deserializer if parse_requests else None
    for shape, make in _SHAPES:
        behaviour = getattr(handler, shape)
        if behaviour:
            return make(wrap(behaviour), parse, handler.response_serializer)
    raise ValueError("a method handler with no behaviour")


async def run_behaviour(
    behaviour: Behaviour, request: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> Any:
    """Run a handler's behaviour inside a wrapper: await it, or (a streaming method written
    as an async generator) write what it yields with ``context.write``."""
    result = behaviour(request, context)
    if inspect.isasyncgen(result):
        # Closed here, not when the garbage collector finds it: its ``finally`` (a listener
        # removed, a slot freed) runs as the call ends, cancelled or not.
        async with contextlib.aclosing(result):
            async for item in result:
                await context.write(item)
        return None
    return await result


def add_service(server: grpc.aio.Server, add: Callable[[Any, Any], None], servicer: Any) -> None:
    """Register ``servicer`` with its generated ``add_*Servicer_to_server`` function, each
    single-request method parsing its request inside the handler.

    grpc.aio parses a unary request before any handler or interceptor runs, and a body
    that is not the method's message ends the call UNKNOWN with a traceback logged at
    ERROR by gRPC itself. Parsed here instead, such a body is answered INVALID_ARGUMENT
    naming the method. Methods that stream requests parse each one as the handler reads
    it, inside the handler already, and are registered as generated. Interceptors see
    the handler as registered, here taking bytes: a server whose interceptors read
    requests registers as generated and installs :class:`ParseRequests` instead.
    """
    registrar = _ParsingRegistrar(server)
    add(servicer, registrar)
    if not registrar.registered:  # generated code from before grpcio 1.66: nothing served
        raise RuntimeError(f"{add.__name__} registered no named handlers: regenerate the gRPC code")


class _ParsingRegistrar:
    """What generated code registers handlers with; passes them on with unary parsing moved
    into the handler. Generated code hands the same handlers to both methods below, so
    the generic registration is rebuilt from the named one."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.registered = False

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        parsed = {name: _parse_inside(f"{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, parsed),))
        # grpcio >= 1.66; grpc-stubs predate it
        self._server.add_registered_method_handlers(service, parsed)  # type: ignore[attr-defined]
        self.registered = True


def error_text(exc: BaseException) -> str:
    """One line for an error a command or tool reports: a call's status and details."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)


def does_not_parse(method: str) -> str:
    """The status message for a request to ``method`` ("failover.v1.Admin/Switch") that is
    not its message: one wording for every server, whoever parses."""
    return f"the request to {method} does not parse as its message"


def _parse_inside(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    parse = handler.request_deserializer
    if parse is None or handler.request_streaming:
        return handler
    bad = does_not_parse(method)

    def wrap(behaviour: Behaviour) -> Behaviour:
        async def parsed(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                request = parse(raw)
            except Exception:  # DecodeError, or any parse failure: the caller's bytes
                log.warning(
                    "%s: a request that does not parse; answered INVALID_ARGUMENT",
                    method,
                    extra=OUTSIDE_INPUT,
                )
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad)
            return await run_behaviour(behaviour, request, context)

        return parsed

    return wrap_handler(handler, wrap, parse_requests=False)


def _being_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not merely handed a
    ``CancelledError`` by a call that ended under it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


STRAY_CANCEL_DETAILS = "the call was cut inside the server (a channel closed under it); send it again"


class HandlerWrapper(grpc.aio.ServerInterceptor):  # type: ignore[misc,type-arg]
    """A server interceptor that runs code around every call: :meth:`wrap` says what.

    grpc.aio asks an interceptor for the handler of every call; the wrapped handler is
    built once per method and handed out again while the method's handler is the same.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = (handler, self.wrap_method(method, handler))
            self._wrapped[method] = known
        return known[1]

    def wrap_method(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return wrap_handler(handler, lambda behaviour: self.wrap(method, behaviour))

    def wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        raise NotImplementedError


class ParseRequests(HandlerWrapper):
    """:func:`add_service`'s request parsing, for a server with interceptors.

    An interceptor sees the handler as registered, so parsing moved into the handler
    at registration would hand every interceptor bytes. As an interceptor placed before
    any that reads requests, the ones after it still see the parsed message.
    """

    def wrap_method(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return _parse_inside(method.lstrip("/"), handler)


class StrayCancelGuard(HandlerWrapper):
    """Answers UNAVAILABLE for a handler that ends with a ``CancelledError`` its own call
    never got.

    grpc.aio ends a client call whose channel is closed under it with
    ``asyncio.CancelledError``. Escaping a handler whose own call was not cancelled,
    gRPC sends no status at all, and the caller waits for its deadline, or forever
    without one. :func:`unary` turns that case into :class:`ChannelClosed` at each call
    site we know of; this guard covers the rest. A call its caller cancelled, or a
    server stopping, cancels the handler's task, and that still ends as a cancel.
    Install it last (innermost), so the interceptors around it see the status it
    answers with. The coordinator installs it; the sidecar's server, on the relay's
    hot path and making no gRPC calls inside its handlers, does not.
    """

    def wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await run_behaviour(behaviour, request, context)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                log.warning("%s: a stray cancel inside the handler; answered UNAVAILABLE", method)
                await context.abort(grpc.StatusCode.UNAVAILABLE, STRAY_CANCEL_DETAILS)

        return guarded


def _check_free(address: str) -> None:
    """Try the address with a plain socket first: gRPC core logs its own multi-line
    complaint on stderr before raising, and the operator should see one line."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0 or host.startswith("unix"):
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
        try:
            s.bind(sockaddr)
        except OSError as exc:
            raise OSError(f"cannot listen on {address}: {(exc.strerror or str(exc)).lower()}") from exc


def bind(server: grpc.aio.Server, address: str, tls: TlsSection | None = None) -> int:
    """Bind a port (mTLS when ``tls`` says so, never on a Unix socket); raise a clear
    error when the address is unusable."""
    _check_free(address)
    secure = tls is not None and tls.enabled and not address.startswith("unix")
    creds = None
    if secure:
        from failover.tls import server_credentials

        assert tls is not None
        creds = server_credentials(tls)
    try:
        port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc raises RuntimeError on bind failure
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def channel(
    target: str,
    *,
    options: Sequence[tuple[str, int | str]] = (),
    tls: TlsSection | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel to one address or an ``ipv4:a,b`` list; call inside the running loop.

    With ``tls`` in mode mtls the channel presents the section's certificate and
    checks the server's against its CA (files read now: rebuild to rotate).
    """
    opts = [*_CLIENT_OPTIONS, *options]
    if tls is None or not tls.enabled or target.startswith("unix"):
        return grpc.aio.insecure_channel(target, options=opts, interceptors=list(interceptors) or None)
    from failover.tls import channel_credentials

    if tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(
        target, channel_credentials(tls), options=opts, interceptors=list(interceptors) or None
    )


T = TypeVar("T")


class ChannelClosed(grpc.aio.AioRpcError):
    """A call cancelled because its channel was closed under it, not because its caller
    was cancelled: a failed call (status CANCELLED), handled where other call failures are."""

    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.CANCELLED,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="channel closed while the call was in flight",
            debug_error_string=None,
        )


async def unary(call: Awaitable[T]) -> T:
    """Await a unary call; raise ``ChannelClosed`` when its channel is closed under it.

    grpc.aio ends such a call with ``asyncio.CancelledError``, the same exception as a
    cancelled caller. Escaping a server handler, it leaves the handler's own caller with
    no status until its deadline; elsewhere it ends the task that made the call. Only a
    task that is itself being cancelled gets ``CancelledError``.
    """
    try:
        return await call
    except asyncio.CancelledError:
        if _being_cancelled():
            raise
        raise ChannelClosed() from None
