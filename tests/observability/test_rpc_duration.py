"""``rpc.server.duration`` and ``rpc.client.duration``: one sample per call with its end status.

A real grpc.aio server on loopback with the interceptors installed, the way the
replica installs them; raw-bytes handlers of every shape (unary, a server-streaming
async generator, a bidirectional stream writing with ``context.write`` like the
Sync stream, one the client cancels). Read back with an in-memory reader.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from failover import rpc
from failover.telemetry import metrics as telemetry
from failover.telemetry.rpc_metrics import RpcInstruments, RpcServerMetrics, split_method
from tests.harness import wait_for

SVC = "t.Svc"
OK, CANCELLED, UNKNOWN, RESOURCE_EXHAUSTED, PERMISSION_DENIED = 0, 1, 2, 8, 7


async def _ok(request: bytes, context: Any) -> bytes:
    return b"ok"


async def _deny(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
    return b""


async def _boom(request: bytes, context: Any) -> bytes:
    raise RuntimeError("a bug in a servicer")


async def _gen(request: bytes, context: Any) -> Any:
    for i in range(3):
        yield bytes([i])


async def _chat(requests: Any, context: Any) -> None:
    """Like the Sync stream: reads, writes several messages, then ends with a status."""
    async for _ in requests:
        for _ in range(3):
            await context.write(b"m")
        break
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "limit")


async def _hang(requests: Any, context: Any) -> None:
    await context.write(b"hello")
    await asyncio.Event().wait()


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SVC,
        {
            "Ok": grpc.unary_unary_rpc_method_handler(_ok),
            "Deny": grpc.unary_unary_rpc_method_handler(_deny),
            "Boom": grpc.unary_unary_rpc_method_handler(_boom),
            "Gen": grpc.unary_stream_rpc_method_handler(_gen),
            "Chat": grpc.stream_stream_rpc_method_handler(_chat),
            "Hang": grpc.stream_stream_rpc_method_handler(_hang),
        },
    )


def samples(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, str, int], int]:
    """(rpc.service, rpc.method, rpc.grpc.status_code) -> sample count, for histogram ``name``."""
    out: dict[tuple[str, str, int], int] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name != name:
                    continue
                assert m.unit == "ms"
                for p in m.data.data_points:
                    a = dict(p.attributes or {})
                    assert a["rpc.system"] == "grpc"
                    key = (str(a["rpc.service"]), str(a["rpc.method"]), int(a["rpc.grpc.status_code"]))
                    out[key] = out.get(key, 0) + p.count
    return out


def test_split_method() -> None:
    assert split_method("/failover.v1.Sync/Stream") == ("failover.v1.Sync", "Stream")
    assert split_method("odd") == ("", "odd")


@pytest.mark.timeout(30)
async def test_every_call_shape_is_one_sample_with_its_status() -> None:
    reader = InMemoryMetricReader()
    tel = telemetry.build("test", "t1", readers=[reader])
    m = RpcInstruments(tel.meter)
    server = rpc.make_server(interceptors=[RpcServerMetrics(m)])
    server.add_generic_rpc_handlers((_handlers(),))
    port = rpc.bind(server, "127.0.0.1:0")
    await server.start()
    ch = rpc.channel(f"127.0.0.1:{port}", interceptors=m.client_interceptors())
    try:
        assert await ch.unary_unary(f"/{SVC}/Ok")(b"x", timeout=5) == b"ok"
        for name, code in (("Deny", grpc.StatusCode.PERMISSION_DENIED), ("Boom", grpc.StatusCode.UNKNOWN)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ch.unary_unary(f"/{SVC}/{name}")(b"x", timeout=5)
            assert err.value.code() == code
        assert [r async for r in ch.unary_stream(f"/{SVC}/Gen")(b"x", timeout=5)] == [b"\0", b"\1", b"\2"]
        chat = ch.stream_stream(f"/{SVC}/Chat")(iter([b"hi"]), timeout=5)
        assert [await chat.read() for _ in range(3)] == [b"m"] * 3
        assert await chat.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        hang = ch.stream_stream(f"/{SVC}/Hang")(timeout=5)
        assert await hang.read() == b"hello"
        hang.cancel()

        want_server = {
            (SVC, "Ok", OK): 1,
            (SVC, "Deny", PERMISSION_DENIED): 1,
            (SVC, "Boom", UNKNOWN): 1,
            (SVC, "Gen", OK): 1,
            (SVC, "Chat", RESOURCE_EXHAUSTED): 1,  # one per stream, not per message
            (SVC, "Hang", CANCELLED): 1,
        }
        got: dict[tuple[str, str, int], int] = {}

        def server_done() -> bool:
            got.clear()
            got.update(samples(reader, "rpc.server.duration"))
            return got == want_server

        await wait_for(server_done, 10, f"server samples {want_server} (got {got})")
        # The client sees the same calls with the same statuses (the Hang stream: its own cancel).
        client: dict[tuple[str, str, int], int] = {}

        def client_done() -> bool:
            client.clear()
            client.update(samples(reader, "rpc.client.duration"))
            return client == want_server

        await wait_for(client_done, 10, f"client samples {want_server} (got {client})")
    finally:
        await ch.close()
        await server.stop(0)
        tel.shutdown()


@pytest.mark.timeout(30)
async def test_a_call_refused_by_authorization_is_timed_with_its_status() -> None:
    """Installed first, as the replica does: the authorization interceptor's refusal is seen."""
    from coordinator.access import AuthzInterceptor

    reader = InMemoryMetricReader()
    tel = telemetry.build("test", "t1", readers=[reader])
    m = RpcInstruments(tel.meter)
    server = rpc.make_server(interceptors=[RpcServerMetrics(m), AuthzInterceptor()])
    server.add_generic_rpc_handlers((_handlers(),))
    port = rpc.bind(server, "127.0.0.1:0")
    await server.start()
    ch = rpc.channel(f"127.0.0.1:{port}")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:  # no certificate: no identity
            await ch.unary_unary(f"/{SVC}/Ok")(b"x", timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await wait_for(
            lambda: samples(reader, "rpc.server.duration") == {(SVC, "Ok", PERMISSION_DENIED): 1},
            10,
            "the refused call's sample",
        )
    finally:
        await ch.close()
        await server.stop(0)
        tel.shutdown()


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (grpc.unary_unary_rpc_method_handler, "unary_unary"),
        (grpc.unary_stream_rpc_method_handler, "unary_stream"),
        (grpc.stream_unary_rpc_method_handler, "stream_unary"),
        (grpc.stream_stream_rpc_method_handler, "stream_stream"),
    ],
)
def test_wrap_handler_keeps_the_call_shape_and_the_serializers(make: Any, shape: str) -> None:
    """The one re-wrap both server interceptors (metrics, authorization) use."""
    from failover.rpc import wrap_handler

    def behaviour(request: Any, context: Any) -> Any:
        return None

    def ser(x: Any) -> bytes:
        return b""

    def de(x: bytes) -> Any:
        return x

    seen: list[Any] = []

    def wrap(b: Any) -> Any:
        seen.append(b)
        return wrapped

    async def wrapped(request: Any, context: Any) -> Any:
        return None

    out = wrap_handler(make(behaviour, request_deserializer=de, response_serializer=ser), wrap)
    assert seen == [behaviour]
    assert getattr(out, shape) is wrapped
    assert [
        s for s in ("unary_unary", "unary_stream", "stream_unary", "stream_stream") if getattr(out, s)
    ] == [shape]
    assert (out.request_deserializer, out.response_serializer) == (de, ser)
    assert out.request_streaming == shape.startswith("stream")
    assert out.response_streaming == shape.endswith("stream")
