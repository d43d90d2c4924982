"""Measure each point of a growth curve, each bounded in time; a point that fails is "not reached".

A point is one fan-out combination (S streams, R replicas: ``fanout.run_combination``)
or one apply-latency row (N sidecar processes: ``apply_latency.measure.apply_one``).
Each runs on a fresh event loop under ``asyncio.wait_for``: whatever happens
(a replica starved by opening thousands of streams, streams shed, a timeout), the
point's own ``finally`` stops every process it started, the failure becomes one
line with a category, and the next point runs.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover.bench.growth.fit import classify
from failover.bench.report import BenchFailure, progress
from failover.machine import MachineLoad


@dataclass(frozen=True)
class Point:
    """One x of the curve: ``size`` streams (fanout) or sidecar hosts (hosts), on ``replicas``."""

    kind: str  # "fanout" | "hosts"
    size: int
    replicas: int

    @property
    def label(self) -> str:
        return f"S={self.size} R={self.replicas}" if self.kind == "fanout" else f"N={self.size} hosts"

    def key(self) -> dict[str, Any]:
        if self.kind == "fanout":
            return {"streams": self.size, "replicas": self.replicas}
        return {"hosts": self.size, "replicas": self.replicas}


Runner = Callable[[Point, float], Awaitable[dict[str, Any]]]  # (point, its deadline) -> figures


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def measure_points(
    points: list[Point], runner: Runner, *, point_timeout_s: float, deadline: float
) -> Iterator[dict[str, Any]]:
    """Every point in order: its figures, or ``reached: False`` with the reason. Raises nothing
    but KeyboardInterrupt (the point's processes are stopped by then; the points before it
    were yielded)."""
    for p in points:
        load = MachineLoad()
        started = time.monotonic()
        doc: dict[str, Any] = {"kind": p.kind, **p.key()}
        if started > deadline:
            reason = "--max-seconds spent before this point started"
            doc.update(reached=False, reason=reason, category=classify(reason))
        else:
            point_deadline = min(deadline, started + point_timeout_s)
            try:
                figures = asyncio.run(
                    asyncio.wait_for(runner(p, point_deadline), max(1.0, point_deadline - started))
                )
                doc.update(reached=True, **figures)
            except TimeoutError:
                reason = f"did not finish within {point_deadline - started:.0f}s"
                doc.update(reached=False, reason=reason, category="timeout")
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # BenchFailure, ChildExited, gRPC: one line, no traceback
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                    inner = exc.exceptions[0]
                    if not isinstance(inner, Exception):
                        break
                    exc = inner
                reason = _first_line(exc)
                doc.update(reached=False, reason=reason, category=classify(reason), detail=str(exc)[:2000])
        doc["elapsed_s"] = round(time.monotonic() - started, 1)
        doc["machine_load"] = load.finish()
        if not doc["reached"]:
            progress(f"[{p.label}] not reached ({doc['category']}): {doc['reason']}")
        yield doc


def fanout_figures(res: dict[str, Any]) -> dict[str, Any]:
    """The curve's figures from one ``run_combination`` result (kept whole under ``fanout``)."""
    replicas = list(res["streams_per_replica"])
    cpu_ms = res["mean_window"]["cpu_ms"]
    replica_ms = sum(cpu_ms.get(r, 0.0) for r in replicas)
    return {
        "last_stream": {k: v for k, v in res["last_stream"].items() if k != "samples_us"},
        "last_stream_samples_us": res["last_stream"].get("samples_us", []),
        "replica_cpu_us_per_decision": round(replica_ms * 1000, 1),
        "replica_cpu_us_per_stream_per_decision": round(replica_ms * 1000 / res["streams"], 2),
        "bench_cpu_us_per_decision": round(cpu_ms.get("bench", 0.0) * 1000, 1),
        "connections": res.get("connections"),
        "fanout": res,
    }


def hosts_figures(row: dict[str, Any], replicas: int) -> dict[str, Any]:
    """The curve's figures from one apply-latency row (``result_json``, kept whole under ``apply``)."""
    n = row["sidecars"]
    per_run = row["cpu_ms_per_run"]
    return {
        "replicas": replicas,
        "last_applied": {k: v for k, v in row["last_sidecar"].items() if k != "samples_us"},
        "last_applied_samples_us": row["last_sidecar"].get("samples_us", []),
        "last_applied_by_log": {k: v for k, v in row["last_sidecar_by_log"].items() if k != "samples_us"},
        "coordinator_cpu_us_per_decision": round(per_run.get("coordinators", 0.0) * 1000, 1),
        "sidecar_cpu_us_per_decision": round(per_run.get("sidecars", 0.0) * 1000, 1),
        "coordinator_cpu_us_per_host_per_decision": round(per_run.get("coordinators", 0.0) * 1000 / n, 1),
        "sidecar_cpu_us_per_host_per_decision": round(per_run.get("sidecars", 0.0) * 1000 / n, 1),
        "apply": row,
    }


def fanout_runner(
    *,
    runs: int,
    channels_per_replica: int,
    run_timeout_s: float,
    pause_s: float,
    keep_logs: bool,
) -> Runner:
    """Each point: a fresh 1-member etcd and R replicas, S streams from this process."""

    async def run(p: Point, deadline: float) -> dict[str, Any]:
        from failover.bench.common import Cluster
        from failover.bench.fanout import run_combination

        cluster = Cluster(f"growth-s{p.size}-r{p.replicas}", p.replicas, 1, keep_logs=keep_logs)
        try:
            res = await run_combination(
                cluster,
                streams=p.size,
                runs=runs,
                channels_per_replica=channels_per_replica,
                run_timeout_s=run_timeout_s,
                pause_s=pause_s,
                deadline=deadline,
                label=p.label,
            )
        except BenchFailure as exc:
            if str(exc).startswith("--max-seconds reached"):  # its deadline is this point's
                raise BenchFailure(f"did not finish within the point's time: {exc}") from None
            raise
        finally:
            cluster.stop()  # idempotent; run_combination stops it too, also when cancelled
        return fanout_figures(res)

    return run


def hosts_runner(*, runs: int, poll_ms: float) -> Runner:
    """Each point: etcd, 3 coordinators, a venue and N real sidecar processes (apply-latency)."""

    async def run(p: Point, deadline: float) -> dict[str, Any]:
        from failover.bench.apply_latency.command import result_json
        from failover.bench.apply_latency.measure import ApplyResult, apply_one

        res = ApplyResult(p.size)
        workdir = Path(tempfile.mkdtemp(prefix=f"failover-bench-growth-hosts-{p.size}-"))
        await apply_one(p.size, runs, res, workdir, poll_ms)
        return hosts_figures(result_json(res), p.replicas)

    return run
