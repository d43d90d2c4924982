"""``failover bench flip``: fault injected -> effective route on backup -> first ack there."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from failover.bench.flip.rig import FlipRig
from failover.bench.report import (
    BenchFailure,
    command_line,
    fmt_ms,
    out,
    print_header,
    progress,
    write_results,
)
from failover.stats import Latency


@dataclass
class FlipResult:
    kind: str  # "hard" (reset) or "silent" (stall)
    heartbeat_ms: int
    flip: Latency
    first_ack: Latency
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind}, heartbeat {self.heartbeat_ms} ms"


async def _flip_main(heartbeats: list[int], runs: int, results: list[FlipResult], workdir: Path) -> None:
    for hb in heartbeats:
        rig = await FlipRig.create(hb, workdir)
        try:
            for fault, kind in (("reset", "hard"), ("stall", "silent")):
                res = FlipResult(
                    kind, hb, Latency(f"{kind}/{hb}ms flip"), Latency(f"{kind}/{hb}ms first ack")
                )
                results.append(res)
                await rig.one_run(fault)  # warm-up, not recorded
                for i in range(runs):
                    d = await rig.one_run(fault)
                    res.flip.record_ns(rig.flip_ns - rig.armed_ns)
                    res.first_ack.record_ns(rig.ack_ns - rig.armed_ns)
                    res.runs.append({"run": i + 1, **d})
                progress(
                    f"{res.label}: {runs} runs, flip p50 {fmt_ms(res.flip.ms(50))} ms, "
                    f"first ack p50 {fmt_ms(res.first_ack.ms(50))} ms"
                )
        finally:
            await rig.stop()


def flip(
    heartbeat_ms: Annotated[
        list[int], typer.Option("--heartbeat-ms", min=1, max=10_000, help="Heartbeat intervals (repeatable).")
    ] = [5, 50],  # noqa: B006 - typer's default; never mutated
    runs: Annotated[
        int, typer.Option("--runs", min=1, max=10_000, help="Runs per fault kind and interval.")
    ] = 50,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every sample (us) to this file.")
    ] = None,
) -> None:
    """Local failover in one process: fault injected -> effective route on backup -> first ack there."""
    import logging

    logging.getLogger("failover_sidecar").setLevel(logging.ERROR)  # one warning per flip otherwise
    logging.getLogger("failover.venue").setLevel(logging.ERROR)
    params = {"heartbeat_ms": heartbeat_ms, "runs": runs}
    cmd = command_line("flip", params)
    notes = [
        "one process, one monotonic clock: in-process venue (2 gateways on 127.0.0.1) and sidecar "
        "Agent + OrderPath on the same event loop, no coordinator",
        "hard = gateway reset (connections closed, listener gone); silent = gateway stall (sockets open, "
        "nothing read or written); silence limit = 3 heartbeat intervals",
        "strategy sends an order every ~1 ms (paced on a deadline); first ack = flip + wait for the "
        "strategy's next order + its round trip on backup (both parts per run in the JSON)",
        "asyncio timers fire on a ~1 ms grid (epoll timeouts are whole ms), so after a hard fault the "
        "strategy's next order tends to come ~1.2 ms later, not uniformly within 1 ms",
        "each fault lands at a random phase (uniform) of the heartbeat interval",
        "reconnect backoff 10..100 ms (bench setting, not measured); one warm-up run per row, not recorded",
    ]
    machine = print_header("failover bench flip", cmd, params, notes=notes)
    doc: dict[str, Any] = {
        "benchmark": "flip",
        "command": cmd,
        "machine": machine,
        "params": params,
        "notes": notes,
    }
    results: list[FlipResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="failover-bench-flip-"))
    code = 0
    try:
        asyncio.run(_flip_main(heartbeat_ms, runs, results, workdir))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except BenchFailure as exc:
        code, doc["error"] = 1, str(exc)
    except (OSError, RuntimeError) as exc:  # unexpected: one line, no traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    t = Table(title="local failover: from fault injection (ms)", title_justify="left")
    for col in (
        "failure",
        "heartbeat",
        "runs",
        "flip p50",
        "flip p99",
        "flip max",
        "ack p50",
        "ack p99",
        "ack max",
    ):
        t.add_column(col, justify="left" if col == "failure" else "right")
    for r in results:
        t.add_row(
            r.kind,
            f"{r.heartbeat_ms} ms",
            str(r.flip.count),
            fmt_ms(r.flip.ms(50)),
            fmt_ms(r.flip.ms(99)),
            fmt_ms(r.flip.ms(None)),
            fmt_ms(r.first_ack.ms(50)),
            fmt_ms(r.first_ack.ms(99)),
            fmt_ms(r.first_ack.ms(None)),
        )
    out.print(t)
    out.print(
        "flip = fault injected -> agent's effective route is backup; "
        "ack = fault injected -> first order ACKED on backup reaches the strategy's sink"
    )
    for r in results:
        wait = sorted(x["next_order_after_flip_us"] for x in r.runs)
        rtt = sorted(x["backup_round_trip_us"] for x in r.runs)
        if wait:
            w50, r50 = wait[len(wait) // 2] / 1000, rtt[len(rtt) // 2] / 1000
            out.print(
                f"  {r.label}: ack - flip = next order after the flip (p50 {w50:.2f} ms) "
                f"+ its round trip on backup (p50 {r50:.2f} ms)"
            )
    doc["results"] = {
        f"{r.kind}/{r.heartbeat_ms}ms": {
            "kind": r.kind,
            "fault": "reset" if r.kind == "hard" else "stall",
            "heartbeat_ms": r.heartbeat_ms,
            "flip": r.flip.to_json(),
            "first_ack": r.first_ack.to_json(),
            "runs": r.runs,
        }
        for r in results
    }
    doc["ok"] = code == 0
    write_results(json_out, doc)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
