"""Spans reach an OTLP/gRPC collector at ``otlp_endpoint``: a real gRPC server stands in for it."""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

from failover.telemetry import tracing


class Collector(tgrpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[tpb.ExportTraceServiceRequest] = []

    async def Export(
        self, request: tpb.ExportTraceServiceRequest, context: object
    ) -> tpb.ExportTraceServiceResponse:  # noqa: N802
        self.requests.append(request)
        return tpb.ExportTraceServiceResponse()


async def test_spans_are_exported_over_otlp_with_the_process_identity() -> None:
    server = grpc.aio.server()
    collector = Collector()
    tgrpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        tr = tracing.build("failover-coordinator", "c1", otlp_endpoint=f"127.0.0.1:{port}")
        parent = tr.tracer.start_span("failover.decide")
        parent.end()
        child = tr.tracer.start_span("failover.commit", context=tracing.extract(*tracing.inject(parent)))
        child.end()
        async with asyncio.timeout(10):
            await asyncio.to_thread(tr.shutdown)  # flushes the batch
        spans = {
            s.name: (s, dict((a.key, a.value.string_value) for a in rs.resource.attributes))
            for req in collector.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        }
        assert set(spans) == {"failover.decide", "failover.commit"}, spans
        commit, resource = spans["failover.commit"]
        assert resource["service.name"] == "failover-coordinator" and resource["service.instance.id"] == "c1"
        assert commit.parent_span_id == spans["failover.decide"][0].span_id
        assert commit.trace_id == spans["failover.decide"][0].trace_id
    finally:
        await server.stop(None)
