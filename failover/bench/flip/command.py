"""``failover bench flip``: fault injected -> effective route on backup -> first ack there."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from failover import gc_policy
from failover.bench import overhead
from failover.bench.flip.rig import FlipRig
from failover.bench.overhead import scrape
from failover.bench.report import (
    BenchFailure,
    command_line,
    fmt_ms,
    out,
    print_header,
    progress,
    write_results,
)
from failover.machine import MachineLoad, load_line
from failover.stats import Latency


@dataclass
class FlipResult:
    kind: str  # "hard" (reset) or "silent" (stall)
    heartbeat_ms: int
    flip: Latency
    first_ack: Latency
    runs: list[dict[str, Any]] = field(default_factory=list)
    metrics: str = ""  # with --compare-metrics: "off" or "on"

    @property
    def label(self) -> str:
        m = f", metrics {self.metrics}" if self.metrics else ""
        return f"{self.kind}, heartbeat {self.heartbeat_ms} ms{m}"

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.heartbeat_ms}ms" + (f"/metrics-{self.metrics}" if self.metrics else "")


FAULTS = {"hard": "reset", "silent": "stall"}  # --fault name -> the venue fault injected


def _result(kind: str, hb: int, metrics: str) -> FlipResult:
    tag = f"{kind}/{hb}ms" + (f" metrics {metrics}" if metrics else "")
    return FlipResult(kind, hb, Latency(f"{tag} flip"), Latency(f"{tag} first ack"), metrics=metrics)


async def _flip_main(
    heartbeats: list[int],
    kinds: list[str],
    runs: int,
    results: list[FlipResult],
    workdir: Path,
    compare: bool,
    doc: dict[str, Any],
) -> None:
    for hb in heartbeats:
        rig = await FlipRig.create(hb, workdir)
        with gc_policy.frozen_heap():  # as the sidecar process runs: its start-up heap frozen
            tel = None
            try:
                variants: list[Any] = [None]
                if compare:
                    # The sidecar's own instruments, exported as in production: a Prometheus reader
                    # behind /metrics on loopback. "off" is the agent with no instruments at all.
                    from failover_sidecar.metrics import SidecarMetrics

                    from failover.telemetry import metrics as telemetry

                    tel = telemetry.build("failover-sidecar", "bench", listen="127.0.0.1:0")
                    tel.serve()
                    sm = SidecarMetrics(tel.meter)
                    sm.bind(rig.agent, rig.order_counters)
                    variants = [None, sm]
                for kind in kinds:
                    fault = FAULTS[kind]
                    rows = [_result(kind, hb, ("on" if v else "off") if compare else "") for v in variants]
                    results.extend(rows)
                    for v in variants:  # one warm-up per variant, not recorded
                        rig.set_metrics(v)
                        await rig.one_run(fault)
                    started = time.monotonic()
                    for i in range(runs):
                        # Alternate which variant goes first (off on, on off, off on, ...): neither always
                        # follows the other, and a drift within a pair hits both alike. Run i of "off" and
                        # run i of "on" are a pair (the bootstrap of the on/off ratio draws them together).
                        order = list(zip(variants, rows, strict=True))
                        if i % 2:
                            order.reverse()
                        for v, res in order:
                            rig.set_metrics(v)
                            d = await rig.one_run(fault)
                            res.flip.record_ns(rig.flip_ns - rig.armed_ns)
                            res.first_ack.record_ns(rig.ack_ns - rig.armed_ns)
                            res.runs.append({"run": i + 1, **d})
                    # What a run of this row costs (fault, recovery and the route back included):
                    # to size --runs and --fault for a run with enough samples beyond p99.
                    per_run_ms = (time.monotonic() - started) * 1000 / (runs * len(variants))
                    doc.setdefault("wall_ms_per_run", {})[f"{kind}/{hb}ms"] = round(per_run_ms, 1)
                    for res in rows:
                        progress(
                            f"{res.label}: {runs} runs, flip p50 {fmt_ms(res.flip.ms(50))} ms, "
                            f"first ack p50 {fmt_ms(res.first_ack.ms(50))} ms; {per_run_ms:.0f} ms of wall "
                            "time per run"
                        )
                if tel is not None:
                    scraped = await asyncio.to_thread(scrape, tel.port)
                    flips = sum(v for k, v in scraped.items() if k.startswith("failover_flips"))
                    doc.setdefault("scraped", {})[f"{hb}ms"] = {
                        "samples": len(scraped),
                        "flips_counted": flips,
                    }
                    progress(
                        f"heartbeat {hb} ms: /metrics scraped, {len(scraped)} samples, "
                        f"{flips:.0f} flips counted"
                    )
                    if not flips:
                        raise BenchFailure(
                            f"heartbeat {hb} ms: /metrics counted no flip in the runs with metrics"
                        )
            finally:
                rig.set_metrics(None)
                await rig.stop()
                if tel is not None:
                    await asyncio.to_thread(tel.shutdown)


def flip(
    heartbeat_ms: Annotated[
        list[int], typer.Option("--heartbeat-ms", min=1, max=10_000, help="Heartbeat intervals (repeatable).")
    ] = [5, 50],  # noqa: B006 - typer's default; never mutated
    runs: Annotated[
        int, typer.Option("--runs", min=1, max=10_000, help="Runs per fault kind and interval.")
    ] = 50,
    fault: Annotated[
        list[str],
        typer.Option(
            "--fault",
            help="Fault kinds to run: hard (gateway reset), silent (stall); repeatable. Both by default.",
        ),
    ] = ["hard", "silent"],  # noqa: B006 - typer's default; never mutated
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every sample (us) to this file.")
    ] = None,
    compare_metrics: Annotated[
        bool,
        typer.Option(
            "--compare-metrics",
            help="Each run twice, without and with the sidecar's metrics (interleaved); report the ratio.",
        ),
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="3 runs at a 5 ms heartbeat: checks the command works.")
    ] = False,
) -> None:
    """Local failover in one process: fault injected -> effective route on backup -> first ack there."""
    import logging

    if quick:
        heartbeat_ms, runs = [5], 3
    bad = [f for f in fault if f not in FAULTS]
    if bad:
        typer.echo(f"error: --fault: {bad[0]!r} is not one of {', '.join(FAULTS)}", err=True)
        raise typer.Exit(2)
    kinds = [k for k in FAULTS if k in fault]  # each once, hard first

    logging.getLogger("failover_sidecar").setLevel(logging.ERROR)  # one warning per flip otherwise
    logging.getLogger("failover.venue").setLevel(logging.ERROR)
    params: dict[str, Any] = {"heartbeat_ms": heartbeat_ms, "runs": runs}
    if kinds != list(FAULTS):
        params["fault"] = kinds
    if compare_metrics:
        params["compare_metrics"] = True
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
    if compare_metrics:
        notes.append(
            "--compare-metrics: the same agent runs alternately without instruments (off) and with the "
            "sidecar's instruments behind a Prometheus /metrics endpoint on loopback (on); runs "
            "alternate off/on, on/off, ... (run i of each is a pair); /metrics is scraped once per interval "
            "after its runs; each on/off ratio comes with a paired bootstrap interval"
        )
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
    load = MachineLoad()
    try:
        asyncio.run(_flip_main(heartbeat_ms, kinds, runs, results, workdir, compare_metrics, doc))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except BenchFailure as exc:
        code, doc["error"] = 1, str(exc)
    except (OSError, RuntimeError) as exc:  # unexpected: one line, no traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    doc["machine_load"] = ml = load.finish()
    t = Table(title="local failover: from fault injection (ms)", title_justify="left")
    for col in (
        "failure",
        "heartbeat",
        *(("metrics",) if compare_metrics else ()),
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
            *((r.metrics,) if compare_metrics else ()),
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
        after = [x for x in r.runs if x["next_order_after_flip_us"] is not None]
        wait = sorted(x["next_order_after_flip_us"] for x in after)
        rtt = sorted(x["backup_round_trip_us"] for x in after)
        if wait:
            w50, r50 = wait[len(wait) // 2] / 1000, rtt[len(rtt) // 2] / 1000
            out.print(
                f"  {r.label}: ack - flip = next order after the flip (p50 {w50:.2f} ms) "
                f"+ its round trip on backup (p50 {r50:.2f} ms)"
            )
    if compare_metrics:
        pairs = [(a, b) for a, b in zip(results[::2], results[1::2], strict=False)]
        rows = []
        for off, on in pairs:
            rows += [(f"{off.kind}/{off.heartbeat_ms}ms flip", off.flip, on.flip)]
            rows += [(f"{off.kind}/{off.heartbeat_ms}ms first ack", off.first_ack, on.first_ack)]
        doc["metrics_overhead"] = overhead.render(
            "metrics overhead: without (off) and with (on) metrics, same run", rows
        )
        if code == 0:
            cost = overhead.instrument_cost()
            doc["instrument_cost_us"] = {k: v.summary() for k, v in cost.items()}
            q, d = cost["queued"], cost["sdk"]
            out.print(
                f"one flip's measurements (a counter, three histogram samples), made once the route "
                f"change is announced (not part of 'flip'), cost p50 {q.percentile_us(50):.0f} us, "
                f"p99 {q.percentile_us(99):.0f} us as recorded (queued); "
                f"straight into the SDK they would cost p50 {d.percentile_us(50):.0f} us, "
                f"p99 {d.percentile_us(99):.0f} us ({q.count} calls each, interleaved)"
            )
    out.print(load_line(ml))
    doc["results"] = {
        r.key: {
            "kind": r.kind,
            "fault": "reset" if r.kind == "hard" else "stall",
            "heartbeat_ms": r.heartbeat_ms,
            "metrics": r.metrics or None,
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
        raise typer.Exit(code)
