"""Traces after a real failover: in-process replicas on a real etcd, a real venue and sidecar.

Each process (three replicas, one sidecar) has its own TracerProvider with an
InMemorySpanExporter, and they talk only over real gRPC sockets, so a span
joins another process's trace only through the W3C context the messages
carry. The primary gateway is reset; then the chain detect -> flip (sidecar)
-> report (the sidecar's replica) -> decide -> commit (leader) -> push (every
replica) -> apply (sidecar) is one trace, each span the child of the one
before, and the decision lines in the logs carry its trace id.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from failover_sidecar.app import SidecarApp
from failover_sidecar.config import SidecarConfig
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from coordinator.replica import Replica
from failover import logs
from failover.telemetry import metrics as telemetry
from failover.telemetry import tracing
from failover.venue.config import VenueConfig
from failover.venue.faults import FaultKind
from failover.venue.server import Venue
from tests.harness import config, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

G = "cme-orders"
WAIT_S = 20.0  # generous: 2 shared cores


@dataclass
class World:
    venue: Venue
    replicas: list[Replica]
    sidecar: SidecarApp
    coord_spans: dict[str, InMemorySpanExporter]  # replica id -> its exporter
    side_spans: InMemorySpanExporter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def world(endpoints: list[str], prefix: str, tmp: Path) -> AsyncIterator[World]:
    venue = Venue(
        VenueConfig.model_validate(
            {
                "name": "v",
                "gateways": [
                    {"name": "primary", "listen": "127.0.0.1:0"},
                    {"name": "backup", "listen": "127.0.0.1:0"},
                ],
            }
        )
    )
    await venue.start()
    gw = venue.gateway_addresses
    grp = {"name": G, "paths": [{"name": p, "endpoints": {"default": gw[p]}} for p in ("primary", "backup")]}
    exporters: dict[str, InMemorySpanExporter] = {}
    replicas = []
    for i in range(3):
        cfg = config(f"c{i + 1}", endpoints, prefix, groups=[grp])
        exporters[cfg.replica_id] = InMemorySpanExporter()
        replicas.append(
            Replica(
                cfg,
                tel=telemetry.disabled(),
                traces=tracing.build(
                    "failover-coordinator", cfg.replica_id, exporters=[exporters[cfg.replica_id]]
                ),
            )
        )
    sock_dir = Path(tempfile.mkdtemp(prefix="fo-trace-", dir="/tmp"))
    scfg = SidecarConfig(
        host_id="h1",
        groups=[G],
        coordinators=[r.cfg.listen for r in replicas],
        state_file=str(tmp / "h1.json"),
        strategies=["s1"],
        listen={"socket": str(sock_dir / "h1.sock")},
        data_plane={"heartbeat_interval_ms": 20},
    )
    side = InMemorySpanExporter()
    app = SidecarApp(
        scfg, tel=telemetry.disabled(), traces=tracing.build("failover-sidecar", "h1", exporters=[side])
    )
    w = World(venue, replicas, app, exporters, side)
    try:
        for r in replicas:
            w.tasks.append(asyncio.create_task(r.run()))
        for r in replicas:
            async with asyncio.timeout(WAIT_S):
                await r.ready.wait()
        w.tasks.append(asyncio.create_task(app.run()))
        async with asyncio.timeout(WAIT_S):
            await app.ready.wait()
        yield w
    finally:
        for t in reversed(w.tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for tr in [r.tracing for r in replicas] + [app.tracing]:
            await asyncio.to_thread(tr.shutdown)
        await venue.stop()


@contextlib.contextmanager
def json_log(*names: str) -> Iterator[io.StringIO]:
    """The named loggers' lines, rendered as the processes render them (JSON), into a buffer."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs.formatter("json"))
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield buf
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def named(spans: list[ReadableSpan] | InMemorySpanExporter, name: str, **attrs: Any) -> list[ReadableSpan]:
    """The spans called ``name`` with these ``failover.*`` attributes (from a list or an exporter)."""
    if isinstance(spans, InMemorySpanExporter):
        spans = list(spans.get_finished_spans())
    return [
        s
        for s in spans
        if s.name == name and all((s.attributes or {}).get(f"failover.{k}") == v for k, v in attrs.items())
    ]


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    """Same trace, and ``span``'s parent is ``parent`` (across processes: a remote parent)."""
    return (
        span.parent is not None
        and span.context is not None
        and parent.context is not None
        and span.context.trace_id == parent.context.trace_id
        and span.parent.span_id == parent.context.span_id
    )


def effective(w: World) -> str | None:
    r = w.sidecar.agent.routes.get(G)
    return r.effective if r is not None else None


async def test_a_real_failover_is_one_trace_from_detect_to_apply(etcd_cluster, prefix, tmp_path) -> None:
    async with world(etcd_cluster.endpoints, prefix, tmp_path) as w:
        agent = w.sidecar.agent
        await wait_for(
            lambda: (
                effective(w) == "primary"
                and all(s.is_up for s in agent.sessions.values())
                and len(agent.sessions) == 2
                and G in agent.decisions
            ),
            WAIT_S,
            "h1 on primary with both paths up",
        )
        with json_log("coordinator.leader", "failover_sidecar.agent") as log_buf:
            await w.venue.inject_fault("primary", None, FaultKind.RESET)
            await wait_for(
                lambda: G in agent.decisions and agent.decisions[G].trigger.kind == "health",
                WAIT_S,
                "a health decision, applied on h1",
            )
            d = agent.decisions[G]
            epoch = f"{d.epoch.era}:{d.epoch.revision}"
            assert list(d.paths)[0] == "backup", d
            await wait_for(
                lambda: len(named(w.side_spans, "failover.apply", epoch=epoch)) == 1,
                WAIT_S,
                "h1's apply span",
            )
            serving = agent.link.status.replica_id
            await wait_for(
                lambda: named(w.coord_spans[serving], "failover.push", epoch=epoch),
                WAIT_S,
                f"the push span of {serving} (ends with h1's ack)",
            )
            # The commit span (and its log line) ends when the leader has read the transaction's
            # reply, which may come after the watch event that let the sidecar apply.
            (leader,) = [r for r in w.replicas if r.election.is_leader]
            lid = leader.cfg.replica_id
            await wait_for(
                lambda: named(w.coord_spans[lid], "failover.commit", epoch=epoch), WAIT_S, "commit"
            )

        side = list(w.side_spans.get_finished_spans())
        coord = {rid: list(e.get_finished_spans()) for rid, e in w.coord_spans.items()}

        # On the host: detect, then the flip under it.
        (detect,) = named(side, "failover.detect", path="primary")
        assert detect.attributes is not None and detect.attributes["failover.cause"] == "reset"
        (flip,) = named(side, "failover.flip", trigger="local")
        assert child_of(flip, detect) and flip.attributes is not None
        assert (flip.attributes["failover.from_path"], flip.attributes["failover.to_path"]) == (
            "primary",
            "backup",
        )
        trace_id = detect.context.trace_id if detect.context else 0
        assert detect.parent is None, "a failover's trace starts on the host that saw the path die"

        # On the replica h1 streams to: the report span continues the host's flip.
        reports = [s for s in named(coord[serving], "failover.report", host="h1") if child_of(s, flip)]
        assert len(reports) == 1, named(coord[serving], "failover.report")
        report = reports[0]
        assert report.parent is not None and report.parent.is_remote

        # On the leader: decide under the report, commit under decide.
        decides = [s for s in named(coord[lid], "failover.decide", trigger="health") if child_of(s, report)]
        assert len(decides) == 1, named(coord[lid], "failover.decide")
        commits = [s for s in named(coord[lid], "failover.commit", epoch=epoch) if child_of(s, decides[0])]
        assert len(commits) == 1, named(coord[lid], "failover.commit")
        commit = commits[0]
        assert commit.context is not None
        # The decision in etcd names the commit span: every replica reads it from there.
        stored = leader.view.routes[G].record
        assert tracing.trace_id_of((stored.traceparent, stored.tracestate)) == format(trace_id, "032x")
        assert f"{commit.context.span_id:016x}" in stored.traceparent

        # Every replica pushes it (each in its own process's provider), under the commit.
        for rid in coord:
            await wait_for(
                lambda rid=rid: named(w.coord_spans[rid], "failover.push", epoch=epoch),
                WAIT_S,
                f"{rid}'s push span",
            )
            (push,) = named(w.coord_spans[rid], "failover.push", epoch=epoch)
            assert child_of(push, commit), (rid, push.parent, commit.context)
        (push,) = named(w.coord_spans[serving], "failover.push", epoch=epoch)
        assert push.attributes is not None and push.attributes["failover.sidecars"] == 1
        assert [e.name for e in push.events] == ["ack"] and push.events[0].attributes == {
            "failover.host": "h1",
            "failover.push_to_ack_us": push.events[0].attributes["failover.push_to_ack_us"],  # type: ignore[index]
        }

        # Back on the host: apply under the push of the replica that delivered it.
        (apply,) = named(side, "failover.apply", epoch=epoch)
        assert child_of(apply, push)
        everywhere = [s for e in [w.side_spans, *w.coord_spans.values()] for s in e.get_finished_spans()]
        assert {s.name for s in everywhere if s.context and s.context.trace_id == trace_id} >= {
            "failover.detect",
            "failover.flip",
            "failover.report",
            "failover.decide",
            "failover.commit",
            "failover.push",
            "failover.apply",
        }

        # The decision lines in the logs carry the trace id.
        lines = [json.loads(ln) for ln in log_buf.getvalue().splitlines() if ln.strip()]
        tid = format(trace_id, "032x")
        committed = [ln for ln in lines if ln["event"].startswith(f"committed {G} -> backup")]
        applied = [ln for ln in lines if ln["event"].startswith(f"decision {G} {epoch}")]
        flipped = [ln for ln in lines if ln["event"].startswith(f"{G}: primary -> backup (local")]
        for what, found in (("commit", committed), ("apply", applied), ("flip", flipped)):
            assert found and all(ln.get("trace_id") == tid for ln in found), (what, found, lines)
