"""``failover bench apply-latency``: the command, the table and the JSON document."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.table import Table

from failover.bench.apply_latency.measure import ApplyResult, apply_one
from failover.bench.apply_latency.system import FRESHNESS_PROBE_MS
from failover.bench.report import (
    BenchFailure,
    command_line,
    fmt_ms,
    out,
    print_header,
    write_results,
)
from failover.bench.tls_variant import BenchPki, TlsMode, comparison_table, label, ratio, variants
from failover.machine import MachineLoad, load_line
from failover.procs import ChildExited

POLL_MS = 2.0


def apply_latency(
    sidecars: Annotated[
        list[int], typer.Option("--sidecars", min=1, max=200, help="Sidecar process counts (repeatable).")
    ] = [3, 20],  # noqa: B006 - typer's default; never mutated
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="Switches per sidecar count.")] = 20,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every sample (us) to this file.")
    ] = None,
    poll_ms: Annotated[
        float,
        typer.Option("--poll-ms", min=0.5, max=1000, help="Interval between a sidecar's GetStatus polls."),
    ] = POLL_MS,
    tls_mode: Annotated[
        TlsMode,
        typer.Option(
            "--tls",
            help="off: plaintext; on: mTLS on every link; both: each row plaintext then mTLS + ratio.",
        ),
    ] = TlsMode.off,
) -> None:
    """Decision committed (seen by our own etcd watch) -> the last of N sidecar processes applied it."""
    tls = tls_mode.value
    params = {"sidecars": sidecars, "runs": runs, "poll_ms": poll_ms, "tls": tls}
    cmd = command_line("apply-latency", params)
    notes = [
        "1 etcd member, 3 coordinator processes, a venue process, N sidecar processes spread over the "
        "replicas; everything on 127.0.0.1",
        "t0 = the bench's own etcd watch on the routes (in a child process, same CLOCK_MONOTONIC) "
        "sees the switch's revision; "
        "t1 = the last sidecar's GetStatus reply showing it (polled over its unix socket, "
        f"~{poll_ms:g} ms between polls, one poller per sidecar)",
        "t1 is an upper bound; the send time of each sidecar's previous poll gives a lower bound; "
        "cross-check free of the polling resolution: the UTC time each sidecar logged applying the "
        "decision vs the watcher's wall clock (same host clock, us resolution)",
        "the polling itself loads the machine (N pollers in this process, N sidecars answering): "
        "with many sidecars on 2 cores it inflates what it measures; "
        "--poll-ms trades resolution for load",
        f"coordinators: defaults except freshness.probe_interval_ms={FRESHNESS_PROBE_MS} (works around "
        "a false 'etcd restore detected' on etcd 3.4's out-of-order progress notifications)",
        "the group is paused (no automatic decision interleaves); each run is an operator switch "
        "(Admin/Switch to the leader, force), paths alternating; "
        "one warm-up switch per row, not recorded",
        *(
            [
                f"--tls {tls}: each row as {' then '.join(label(v) for v in variants(tls))}, a fresh "
                "system each; mTLS on sidecar -> replica, replica -> replica and the bench's Admin calls "
                "(certificates from a throwaway dev CA; etcd and the sidecars' unix sockets stay plaintext)"
            ]
            if tls != "off"
            else []
        ),
    ]
    machine = print_header("failover bench apply-latency", cmd, params, etcd=True, notes=notes)
    doc: dict[str, Any] = {
        "benchmark": "apply-latency",
        "command": cmd,
        "machine": machine,
        "params": params,
        "notes": notes,
    }
    results: list[ApplyResult] = []
    code = 0
    load = MachineLoad()
    pki = BenchPki() if tls != "off" else None
    try:
        for n in sidecars:
            for secure in variants(tls):
                res = ApplyResult(n, tls=label(secure))
                results.append(res)
                workdir = Path(tempfile.mkdtemp(prefix=f"failover-bench-apply-{n}-{label(secure)}-"))
                asyncio.run(apply_one(n, runs, res, workdir, poll_ms, pki if secure else None))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except (BenchFailure, ChildExited) as exc:
        code, doc["error"] = 1, str(exc)
    except (grpc.aio.AioRpcError, OSError, RuntimeError) as exc:  # unexpected: one line, no traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        if pki is not None:
            pki.remove()
    doc["machine_load"] = ml = load.finish()
    t = Table(title="decision commit -> sidecar applied (ms)", title_justify="left")
    for col in (
        "sidecars",
        "tls",
        "runs",
        "last p50",
        "last p99",
        "last max",
        "lower-bound p50",
        "each p50",
        "each p99",
        "poll gap p50",
        "poll gap p99",
        "poll rtt p50",
        "log: last p50",
        "log: last p99",
        "log: last max",
        "CPU us/sidecar/switch: coord / sidecar",
    ):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            str(r.sidecars),
            r.tls,
            str(r.last.count),
            fmt_ms(r.last.ms(50)),
            fmt_ms(r.last.ms(99)),
            fmt_ms(r.last.ms(None)),
            fmt_ms(r.lower_p50_ms()),
            fmt_ms(r.every.ms(50)),
            fmt_ms(r.every.ms(99)),
            fmt_ms(r.gaps.ms(50)),
            fmt_ms(r.gaps.ms(99)),
            fmt_ms(r.rtts.ms(50)),
            fmt_ms(r.log_last.ms(50)),
            fmt_ms(r.log_last.ms(99)),
            fmt_ms(r.log_last.ms(None)),
            " / ".join(f"{v:g}" for v in r.cpu_us_per_sidecar_per_run().values()) or "-",
        )
    out.print(t)
    out.print(
        "last = per run, commit -> the last sidecar's poll reply showing the new epoch (upper bound); "
        "lower-bound = commit -> that sidecar's previous poll was sent; each = every sidecar of every run; "
        "poll gap = time between the starts of successive polls of one sidecar (the polling resolution "
        f"actually achieved; target {poll_ms:g} ms); poll rtt = one GetStatus round trip; "
        "log = commit -> the last sidecar's log line applying the decision (no polling resolution)"
    )
    if tls == "both" and results:
        doc["tls_comparison"] = pairs = apply_pairs(results)
        out.print(comparison_table(pairs, "sidecars"))
    out.print(load_line(ml))
    doc["results"] = [result_json(r) for r in results]
    doc["ok"] = code == 0
    write_results(json_out, doc)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
        raise typer.Exit(code)


def result_json(r: ApplyResult) -> dict[str, Any]:
    """One row of the JSON document (also a point of ``failover bench growth --kind hosts``)."""
    return {
        "sidecars": r.sidecars,
        "tls": r.tls,
        "cpu_ms_per_run": r.cpu_ms_per_run,
        "cpu_us_per_sidecar_per_run": r.cpu_us_per_sidecar_per_run(),
        "last_sidecar": r.last.to_json(),
        "last_sidecar_lower_bound_us": r.lower_last_us,
        "each_sidecar": r.every.to_json(),
        "poll_gap": r.gaps.to_json(),
        "poll_round_trip": r.rtts.to_json(),
        "last_sidecar_by_log": r.log_last.to_json(),
        "each_sidecar_by_log": r.log_every.to_json(),
        "runs": r.runs,
    }


def apply_pairs(results: list[ApplyResult]) -> list[dict[str, Any]]:
    """Rows paired by sidecar count: both variants' figures and mTLS/plaintext."""

    def figures(r: ApplyResult) -> dict[str, float | None]:
        f: dict[str, float | None] = {}
        for name, lat in (("last_sidecar", r.last), ("each_sidecar", r.every), ("last_by_log", r.log_last)):
            for short, pct in (("p50", 50.0), ("p99", 99.0), ("max", None)):
                f[f"{name}_{short}_ms"] = lat.ms(pct)
        for k, v in r.cpu_us_per_sidecar_per_run().items():
            f[f"{k}_cpu_us_per_sidecar_per_switch"] = v
        return f

    by_n: dict[int, dict[str, ApplyResult]] = {}
    for r in results:
        by_n.setdefault(r.sidecars, {})[r.tls] = r
    pairs = []
    for n, both in by_n.items():
        if "insecure" in both and "mtls" in both:
            plain, secure = figures(both["insecure"]), figures(both["mtls"])
            pairs.append(
                {
                    "sidecars": n,
                    "insecure": plain,
                    "mtls": secure,
                    "ratio": {k: ratio(secure.get(k), v) for k, v in plain.items()},
                }
            )
    return pairs
