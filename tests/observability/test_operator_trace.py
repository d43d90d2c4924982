"""An operator command is the root of its decision's trace (W3C context as gRPC metadata).

Real replicas on a real etcd, each with its own TracerProvider and an in-memory
exporter; the real CLI in a subprocess, asked through the follower (so the
context must survive the forward to the leader). The leader's decide and
commit spans carry the CLI's trace id, the decide span's parent is the CLI's
(remote) span, and the CLI prints that trace id.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from coordinator.replica import Replica
from failover.telemetry import metrics as telemetry
from failover.telemetry import tracing
from tests.harness import ReplicaSet, wait_for
from tests.procs import cli

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

G = "cme-orders"
WAIT_S = 20.0  # generous: 2 shared cores


class TracedReplicas(ReplicaSet):
    """A ReplicaSet whose replicas export their spans to one in-memory exporter each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spans = {c.replica_id: InMemorySpanExporter() for c in self.configs}

    async def start(self, i: int) -> Replica:
        cfg = self.configs[i]
        traces = tracing.build("failover-coordinator", cfg.replica_id, exporters=[self.spans[cfg.replica_id]])
        r = Replica(cfg, tel=telemetry.disabled(), traces=traces)
        self.replicas[i] = r
        self.tasks[i] = asyncio.create_task(r.run(), name=f"replica-{i}")
        async with asyncio.timeout(WAIT_S):
            await r.ready.wait()
        return r


def spans_named(exp: InMemorySpanExporter, name: str, trace_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exp.get_finished_spans()
        if s.name == name and s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> str:
    r = await asyncio.to_thread(cli, *args, timeout=60, env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r.stdout


class Collector(tgrpc.TraceServiceServicer):
    """An OTLP/gRPC receiver: what the CLI exports."""

    def __init__(self) -> None:
        self.requests: list[tpb.ExportTraceServiceRequest] = []

    async def Export(
        self, request: tpb.ExportTraceServiceRequest, context: object
    ) -> tpb.ExportTraceServiceResponse:  # noqa: N802
        self.requests.append(request)
        return tpb.ExportTraceServiceResponse()


async def test_an_operator_decision_joins_the_trace_of_the_cli_command(etcd_cluster, prefix) -> None:
    rs = TracedReplicas(etcd_cluster.endpoints, prefix, n=2)
    try:
        await rs.start_all()
        leader = await rs.wait_leader(WAIT_S)
        follower = next(r for r in rs.running() if r is not leader)
        exp = rs.spans[leader.cfg.replica_id]

        # 1. A switch, asked through the follower, under a parent the environment names.
        parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        out = await run_cli(
            "switch", G, "backup", "--reason", "trace test", "--force", "-c", follower.cfg.listen,
            env={"TRACEPARENT": f"00-{parent_trace}-{parent_span}-01"},
        )  # fmt: skip
        assert f"trace {parent_trace}" in out, out
        await wait_for(lambda: spans_named(exp, "failover.commit", parent_trace), WAIT_S, "the commit span")
        (decide,) = spans_named(exp, "failover.decide", parent_trace)
        (commit,) = spans_named(exp, "failover.commit", parent_trace)
        assert decide.parent is not None and decide.parent.is_remote
        assert decide.parent.span_id != int(parent_span, 16)  # the CLI's own span, a child of the env's
        assert commit.parent is not None and decide.context is not None
        assert commit.parent.span_id == decide.context.span_id
        assert (decide.attributes or {}).get("failover.paths", "").startswith("backup")

        # 2. A control (drain of the active path) with no parent: the CLI starts a trace of its
        # own, prints its id, and the decision the drain causes is in it.
        out = await run_cli(
            "drain", G, "backup", "--reason", "trace test", "--force", "-c", follower.cfg.listen
        )
        m = re.search(r"trace ([0-9a-f]{32})", out)
        assert m is not None and m.group(1) != parent_trace, out
        await wait_for(
            lambda: spans_named(exp, "failover.commit", m.group(1)), WAIT_S, "the drain's commit span"
        )
        (decide,) = spans_named(exp, "failover.decide", m.group(1))
        assert (decide.attributes or {}).get("failover.paths", "").startswith("primary")

        # 3. Given a collector, the CLI exports its own span: the decide span's parent.
        server = grpc.aio.server()
        collector = Collector()
        tgrpc.add_TraceServiceServicer_to_server(collector, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            out = await run_cli(
                "undrain", G, "backup", "--reason", "trace test", "-c", follower.cfg.listen,
                env={"FAILOVER_OTLP_ENDPOINT": f"127.0.0.1:{port}"},
            )  # fmt: skip
        finally:
            await server.stop(None)
        cli_spans = [
            s
            for req in collector.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]
        assert [s.name for s in cli_spans] == ["failover undrain"], cli_spans
        tid = cli_spans[0].trace_id.hex()
        assert re.search(r"trace [0-9a-f]{32}", out) is None or f"trace {tid}" in out, out
        await wait_for(lambda: spans_named(exp, "failover.decide", tid), WAIT_S, "the undrain's decide span")
        (decide,) = spans_named(exp, "failover.decide", tid)
        assert decide.parent is not None and decide.parent.span_id == int.from_bytes(
            cli_spans[0].span_id, "big"
        )
    finally:
        await rs.stop_all()
        for exp_ in rs.spans.values():
            exp_.clear()
