"""``failover bench relay``: the command, its flags, the header and the JSON document."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from failover.bench import overhead
from failover.bench.relay.framed_rows import FramedRows, render_framed
from failover.bench.relay.guard import Watchdog
from failover.bench.relay.measure import Bench, Results
from failover.bench.relay.render import added, relay_over_bare, render
from failover.bench.relay.rig import GROUP, STRATEGY, Rig
from failover.bench.report import BenchFailure, command_line, out, print_header, write_results
from failover.machine import MachineLoad, load_line
from failover.procs import ChildExited

NETWORK = "loopback (127.0.0.1 TCP to the venue, a unix socket to the sidecar)"


def parse_inflight(value: str | int) -> list[int]:
    """``"1,64"`` -> ``[1, 64]``; each 1..10000 (the sidecar's default ``orders.max_outstanding``)."""
    try:
        items = [int(x) for x in str(value).split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: comma-separated integers expected", param_hint="--inflight"
        ) from None
    if not items or any(not 1 <= x <= 10_000 for x in items):
        raise typer.BadParameter(f"{value!r}: each value must be in 1..10000", param_hint="--inflight")
    return list(dict.fromkeys(items))


def relay(
    messages: Annotated[
        int,
        typer.Option(
            "--messages", min=1, max=10_000_000, help="Recorded round trips, direct and relay each."
        ),
    ] = 100_000,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, max=1_000_000, help="Unrecorded round trips of each first.")
    ] = 2_000,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the raw figures to this file.")
    ] = None,
    inflight: Annotated[
        str,
        typer.Option(
            "--inflight", help="Throughput runs: messages outstanding, comma-separated (e.g. 1,64)."
        ),
    ] = "1",
    throughput_messages: Annotated[
        int,
        typer.Option(
            "--throughput-messages", min=0, max=10_000_000, help="Messages per throughput row (0: skip)."
        ),
    ] = 20_000,
    max_seconds: Annotated[
        float, typer.Option("--max-seconds", min=10, help="Abort (exit 1) when the run takes longer.")
    ] = 600.0,
    compare_metrics: Annotated[
        bool,
        typer.Option(
            "--compare-metrics",
            help="Also relay through a second sidecar with /metrics (interleaved); report the ratio.",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="300 round trips, 400 per throughput row: checks the command works."),
    ] = False,
    framed: Annotated[
        bool,
        typer.Option(
            "--framed/--no-framed",
            help="Also measure the sidecar's framed socket and a bare framed relay (same run).",
        ),
    ] = True,
    framed_only: Annotated[
        bool,
        typer.Option(
            "--framed-only",
            help="Only the framed rows (direct TCP, the sidecar's framed socket, a bare framed relay).",
        ),
    ] = False,
) -> None:
    """Round trip strategy -> venue, direct vs through a sidecar process, and one sidecar's throughput."""
    if quick:
        messages, warmup, throughput_messages = 300, 50, 400
    windows = parse_inflight(inflight)
    params: dict[str, Any] = {
        "messages": messages,
        "warmup": warmup,
        "inflight": ",".join(map(str, windows)),
        "throughput_messages": throughput_messages,
        "max_seconds": max_seconds,
        "framed": framed,
        "framed_only": framed_only,
    }
    if compare_metrics:
        params["compare_metrics"] = True
    if json_out is not None:
        params["json_out"] = str(json_out)
    cmd = command_line("relay", params)
    notes = [
        "three processes on this machine: the venue simulator, one sidecar, the strategy (this process); "
        "they share the machine's cores with each other and with anything else running",
        "direct: this process speaks the venue protocol to the primary gateway itself "
        "(asyncio protocol, new -> ack); relay: failover_client.api.Sidecar over the sidecar's unix socket "
        "(Relay stream; outcome ACKED), the sidecar writing to its warm primary session",
        "no control plane: the sidecar's state file is seeded with the group and a decision "
        "[primary, backup] before it starts; its coordinator address is an unused port "
        "(its link keeps retrying)",
        "sidecar heartbeats every 50 ms (default); a path is declared silent after 20 intervals (1 s, "
        "default 3), and an unanswered order or probe after 1 s (defaults 5 and 50 ms floors), so that "
        "a starved machine does not flip the sidecar mid-run (a flip fails the run)",
        f"round trips: {warmup} warm-up of each, then {messages} of each in alternating blocks; "
        "clock: CLOCK_MONOTONIC in this process, from just before the send to the task resuming "
        "with the answer",
    ]
    if compare_metrics:
        notes.append(
            "--compare-metrics: a second sidecar process, identical but for its host id, its socket and "
            "metrics_listen (Prometheus /metrics on loopback); relay_metrics goes through it, and the "
            "order of direct, relay and relay_metrics rotates per block; its /metrics is scraped at the end "
            "and must count every message it relayed"
        )
    m = print_header("failover bench relay", cmd, params, network=NETWORK, notes=notes)

    res = Results()
    doc: dict[str, Any] = {
        "benchmark": "relay",
        "command": cmd,
        "machine": m,
        "params": params,
        "notes": notes,
    }
    wd = Watchdog(max_seconds)
    rig: Rig | None = None
    bench: Bench | None = None
    code = 0
    started = time.monotonic()
    load = MachineLoad()
    try:
        rig = Rig(metrics=compare_metrics)
        doc["setup"] = {
            "gateways": rig.gateways,
            "venue_control": rig.venue_control,
            "sidecar_socket": rig.socket,
            "unused_coordinator_address": rig.coordinator,
            "group": GROUP,
            "strategy_id": STRATEGY,
        }
        bench = Bench(
            rig,
            res,
            wd,
            messages=messages,
            warmup=warmup,
            inflight=windows,
            throughput_messages=throughput_messages,
            compare_metrics=compare_metrics,
        )
        if framed or framed_only:
            bench.framed_rows = FramedRows(bench)
        main = bench.framed_rows.run_alone() if bench.framed_rows and framed_only else bench.run()
        asyncio.run(wd.guard(main))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except (BenchFailure, ChildExited) as exc:
        code, doc["error"] = 1, str(exc)
    except Exception as exc:  # unexpected: one line, not a traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        if rig is not None:
            if code:
                rig.keep_logs = True
            rig.stop()
    doc["ok"] = code == 0
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    doc["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["latency"] = {
        "direct": res.direct.to_json(),
        "relay": res.relay.to_json(),
        "bare_grpc": res.bare_grpc.to_json(),
        "added_us": added(res),
        "bare_grpc_added_us": added(res, res.bare_grpc),
        "relay_over_bare_grpc": relay_over_bare(res),
    }
    if compare_metrics:
        doc["latency"]["relay_metrics"] = res.relay_metrics.to_json()
        doc["sidecar_with_metrics_at_rest"] = res.idle_metrics
        doc["scraped"] = res.scraped
    doc["relay_split_us"] = {
        "queue": res.relay_queue.summary(),
        "venue": res.relay_venue.summary(),
        "outside": res.relay_outside.summary(),
    }
    doc["latency_blocks"] = res.blocks
    doc["latency_cpu_s"] = res.latency_cpu
    doc["sidecar_at_rest"] = res.idle
    doc["throughput"] = res.throughput
    doc["checks"] = res.checks
    if bench is not None and bench.framed_rows is not None:
        doc["framed"] = bench.framed_rows.res.to_json()
    over = render(res) if not framed_only else {}
    if compare_metrics:  # the rendered comparison (bootstrap done once), or an empty one
        doc["metrics_overhead"] = over or {"relay round trip": overhead.compare(res.relay, res.relay_metrics)}
    if res.checks:
        c = res.checks
        out.print(
            f"checks: {c['relay_sent']} relayed, sidecar acked {c['sidecar_counters'].get('acked', 0)}; "
            f"venue booked {c['venue']['orders']} orders "
            f"({c['direct_sent']} direct + {c['relay_sent']} relay"
            + (f" + {c['relay_metrics_sent']} relay_metrics" if "relay_metrics_sent" in c else "")
            + f" + {c.get('bare_grpc_sent', 0)} bare_grpc), "
            f"{c['venue']['duplicates']} duplicates; sidecar flips: {len(c['sidecar_flips'])}"
        )
    doc["machine_load"] = ml = load.finish()
    if bench is not None and bench.framed_rows is not None:
        render_framed(bench.framed_rows.res)
    out.print(
        f"elapsed {doc['elapsed_s']}s; load average {doc['load_average_at_end']} at the end", markup=False
    )
    out.print(load_line(ml), markup=False)
    write_results(json_out, doc)
    if code:
        out.print("[red]FAILED:[/red] " + escape(doc["error"]))
        raise typer.Exit(code)
