"""``failover bench growth``: the command, the table, the fitted slopes, the JSON and the PNG."""

from __future__ import annotations

import enum
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from failover.bench.growth.fit import Fit, fit_line
from failover.bench.growth.points import Point, fanout_runner, hosts_runner, measure_points
from failover.bench.report import command_line, fmt_ms, out, print_header, sigterm_as_interrupt, write_results
from failover.machine import MachineLoad, load_line

HOSTS_REPLICAS = 3  # apply-latency's system: 3 coordinator processes


class Kind(enum.StrEnum):
    fanout = "fanout"
    hosts = "hosts"


def _r2(f: Fit | None) -> str:
    return "-" if f is None or f.r2 is None else f"{f.r2:.3f}"


def _slope(f: Fit | None, scale: float, unit: str) -> str:
    return "no fit (fewer than 2 points)" if f is None else f"{f.slope * scale:+,.2f} {unit} (R² {_r2(f)})"


# Per kind: series name -> (fit name, y of each point, scale of the slope for display, unit).
_FITS: dict[str, list[tuple[str, str, float, str]]] = {
    "fanout": [
        ("time_p50", "last_stream.p50_ms", 1000.0, "ms per 1,000 streams"),
        ("time_p99", "last_stream.p99_ms", 1000.0, "ms per 1,000 streams"),
        ("cpu", "replica_cpu_us_per_decision", 1.0, "µs replica CPU per stream per decision"),
    ],
    "hosts": [
        ("time_p50", "last_applied.p50_ms", 1.0, "ms per host"),
        ("time_p99", "last_applied.p99_ms", 1.0, "ms per host"),
        (
            "cpu_coordinators",
            "coordinator_cpu_us_per_decision",
            1.0,
            "µs coordinator CPU per host per decision",
        ),
        ("cpu_sidecars", "sidecar_cpu_us_per_decision", 1.0, "µs sidecar CPU per host per decision"),
    ],
}


def _get(row: dict[str, Any], dotted: str) -> float:
    v: Any = row
    for part in dotted.split("."):
        v = v[part]
    return float(v)


def series_name(kind: str, replicas: int) -> str:
    return f"R={replicas}" if kind == "fanout" else f"{replicas} replicas"


def fit_curves(kind: str, points: list[dict[str, Any]]) -> dict[str, dict[str, Fit | None]]:
    """Per replica count, a least-squares line per measure over the points reached."""
    x_key = "streams" if kind == "fanout" else "hosts"
    fits: dict[str, dict[str, Fit | None]] = {}
    for r in sorted({int(p["replicas"]) for p in points}):
        rows = [p for p in points if p.get("reached") and int(p["replicas"]) == r]
        xs = [float(p[x_key]) for p in rows]
        fits[series_name(kind, r)] = {
            name: fit_line(xs, [_get(p, y) for p in rows]) for name, y, _scale, _unit in _FITS[kind]
        }
    return fits


def fits_json(kind: str, fits: dict[str, dict[str, Fit | None]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for series, by_name in fits.items():
        doc[series] = {}
        for name, y, scale, unit in _FITS[kind]:
            f = by_name.get(name)
            doc[series][name] = {
                "x": "streams" if kind == "fanout" else "hosts",
                "y": y,
                "slope_unit": unit,
                "slope": None if f is None else round(f.slope * scale, 4),
                **({} if f is None else {"fit": f.to_json()}),
            }
    return doc


def _int_list(value: str, name: str, hi: int) -> list[int]:
    from failover.bench.cli import _int_list as parse  # one parser for every bench list option

    return parse(value, name, 1, hi)


def growth(
    kind: Annotated[
        Kind,
        typer.Option(
            "--kind",
            help="fanout: S streams from this process (fanout's client); hosts: N real sidecar processes "
            "(apply-latency's system, 3 replicas).",
        ),
    ] = Kind.fanout,
    streams: Annotated[str, typer.Option("--streams", help="fanout: stream counts, comma-separated.")] = (
        "10,100,1000,5000"
    ),
    replicas: Annotated[
        str, typer.Option("--replicas", help="fanout: replica counts, comma-separated.")
    ] = "1,3",
    hosts: Annotated[
        str, typer.Option("--hosts", help="hosts: sidecar counts, comma-separated.")
    ] = "1,5,10,20",
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="Switches per point.")] = 10,
    channels_per_replica: Annotated[
        int,
        typer.Option("--channels-per-replica", min=1, max=64, help="fanout: gRPC connections per replica."),
    ] = 4,
    run_timeout: Annotated[
        float,
        typer.Option(
            "--run-timeout", min=1, help="fanout: bound (s) on each decision reaching every stream."
        ),
    ] = 10.0,
    pause_ms: Annotated[
        int, typer.Option("--pause-ms", min=0, max=10_000, help="fanout: pause between runs.")
    ] = 100,
    poll_ms: Annotated[
        float, typer.Option("--poll-ms", min=0.5, max=1000, help="hosts: interval between a sidecar's polls.")
    ] = 2.0,
    point_timeout: Annotated[
        float,
        typer.Option(
            "--point-timeout", min=1, help="Bound (s) on one point; past it the point is 'not reached'."
        ),
    ] = 300.0,
    max_seconds: Annotated[
        float,
        typer.Option("--max-seconds", min=10, help="Bound (s) on the whole run; later points not reached."),
    ] = 3600.0,
    png: Annotated[
        Path | None, typer.Option("--png", help="Draw the curve to this PNG file (matplotlib).")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every point, its samples and the fits to this file.")
    ] = None,
    keep_logs: Annotated[bool, typer.Option("--keep-logs", help="fanout: keep coordinator logs.")] = False,
) -> None:
    """Growth curve: the fan-out over stream and replica counts, or apply latency over hosts; the slopes."""
    k = kind.value
    if png is not None:
        from failover.bench.growth.plot import PlotUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            out.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None
        if not png.parent.is_dir():
            out.print(f"error: --png {png}: directory {png.parent} does not exist", markup=False)
            raise typer.Exit(2)
    if k == "fanout":
        points = [
            Point("fanout", s, r)
            for s in _int_list(streams, "--streams", 5000)
            for r in _int_list(replicas, "--replicas", 9)
        ]
        params: dict[str, Any] = {
            "kind": k,
            "streams": streams,
            "replicas": replicas,
            "runs": runs,
            "channels_per_replica": channels_per_replica,
            "run_timeout": run_timeout,
            "pause_ms": pause_ms,
        }
        setup = (
            "per point (S, R): a fresh 1-member etcd and R coordinator processes; S streams from this "
            f"process over {channels_per_replica} HTTP/2 connection(s) per replica, auto-acking "
            "(failover bench fanout); "
            "time = t_commit (own etcd watch) -> the last stream received the decision; CPU = the replicas' "
            "CPU from just before the Switch until the last stream had it, per decision"
        )
    else:
        points = [Point("hosts", n, HOSTS_REPLICAS) for n in _int_list(hosts, "--hosts", 200)]
        params = {"kind": k, "hosts": hosts, "runs": runs, "poll_ms": poll_ms}
        setup = (
            "per point N: 1 etcd member, 3 coordinator processes, a venue and N real sidecar processes "
            "(failover bench apply-latency); time = commit (own etcd watch) -> the last sidecar's GetStatus "
            "shows the switch applied; CPU = coordinators and sidecars over the recorded runs, per decision "
            f"(includes the sidecars answering the bench's polls every ~{poll_ms:g} ms)"
        )
    params.update(point_timeout=point_timeout, max_seconds=max_seconds)
    cmd = command_line("growth", params)
    machine = print_header(
        f"failover bench growth --kind {k}", cmd, params, etcd=True, extra={"setup": setup}
    )
    runner = (
        fanout_runner(
            runs=runs,
            channels_per_replica=channels_per_replica,
            run_timeout_s=run_timeout,
            pause_s=pause_ms / 1000,
            keep_logs=keep_logs,
        )
        if k == "fanout"
        else hosts_runner(runs=runs, poll_ms=poll_ms)
    )
    load = MachineLoad()
    started = time.monotonic()
    code = 0
    results: list[dict[str, Any]] = []
    with sigterm_as_interrupt():
        try:
            for doc_point in measure_points(
                points, runner, point_timeout_s=point_timeout, deadline=started + max_seconds
            ):
                results.append(doc_point)
        except KeyboardInterrupt:
            code = 130
    fits = fit_curves(k, results)
    doc: dict[str, Any] = {
        "benchmark": "growth",
        "kind": k,
        "command": cmd,
        "machine": machine,
        "params": params,
        "setup": setup,
        "points": results,
        "fits": fits_json(k, fits),
        "elapsed_s": round(time.monotonic() - started, 1),
        "machine_load": load.finish(),
    }
    render(k, results, fits, runs)
    ml = doc["machine_load"]
    out.print(load_line(ml))
    reached = sum(1 for p in results if p["reached"])
    if code == 0 and reached == 0:
        code = 1
        doc["error"] = "no point of the curve was reached"
    elif code == 130:
        doc["error"] = "interrupted"
    doc["ok"] = code == 0
    write_results(json_path, doc)
    if png is not None and reached:
        from failover.bench.growth.plot import draw

        la = ml["loadavg_at_end"][0]
        subtitle = (
            f"failover bench growth --kind {k}: {runs} runs per point; other load mean "
            f"{ml['other_processes_mean_cores']} cores, load average {la} at the end"
        )
        draw(png, k, results, fits, subtitle)
        out.print(f"plot written to {png}", markup=False)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
        raise typer.Exit(code)


def render(
    kind: str, results: list[dict[str, Any]], fits: dict[str, dict[str, Fit | None]], runs: int
) -> None:
    """The curve as a table (not-reached points with their reason), then the slopes."""
    if kind == "fanout":
        t = Table(
            title=f"growth: commit -> last stream received, {runs} runs per point", title_justify="left"
        )
        cols = [
            "S",
            "R",
            "runs",
            "p50 ms",
            "p99 ms",
            "max ms",
            "replica CPU µs/stream/decision",
            "replica CPU ms/decision",
            "other load cores",
            "status",
        ]
    else:
        t = Table(title=f"growth: commit -> last host applied, {runs} runs per point", title_justify="left")
        cols = [
            "hosts",
            "runs",
            "p50 ms",
            "p99 ms",
            "max ms",
            "coord CPU µs/host/decision",
            "sidecar CPU µs/host/decision",
            "other load cores",
            "status",
        ]
    for c in cols:
        t.add_column(c, justify="right" if c != "status" else "left")
    for p in results:
        load = f"{p['machine_load']['other_processes_mean_cores']:.2f}"
        head = [str(p["streams"]), str(p["replicas"])] if kind == "fanout" else [str(p["hosts"])]
        if not p["reached"]:
            blanks = ["-"] * (len(cols) - len(head) - 2)
            t.add_row(*head, *blanks, load, f"not reached ({p['category']}): {p['reason']}")
            continue
        lat = p["last_stream" if kind == "fanout" else "last_applied"]
        figs = [
            str(lat.get("count", 0)),
            fmt_ms(lat.get("p50_ms")),
            fmt_ms(lat.get("p99_ms")),
            fmt_ms(lat.get("max_ms")),
        ]
        if kind == "fanout":
            cpu = [
                f"{p['replica_cpu_us_per_stream_per_decision']:,.1f}",
                f"{p['replica_cpu_us_per_decision'] / 1000:,.2f}",
            ]
        else:
            cpu = [
                f"{p['coordinator_cpu_us_per_host_per_decision']:,.0f}",
                f"{p['sidecar_cpu_us_per_host_per_decision']:,.0f}",
            ]
        t.add_row(*head, *figs, *cpu, load, "ok")
    out.print(t)
    x_key = "streams" if kind == "fanout" else "hosts"
    for series, by_name in fits.items():
        xs = sorted(
            p[x_key] for p in results if p["reached"] and series_name(kind, int(p["replicas"])) == series
        )
        span = f"{len(xs)} point(s)" + (f", {x_key} {xs[0]}..{xs[-1]}" if xs else "")
        out.print(f"slope {series} ({span}):", markup=False)
        for name, _y, scale, unit in _FITS[kind]:
            out.print(f"  {name.replace('_', ' ')}: {_slope(by_name.get(name), scale, unit)}", markup=False)
    out.print(
        "slope = least-squares line through the points reached (time: p50 and p99 of each point; CPU: per "
        "decision, all processes of a kind together); with 2 points R² is 1 by construction. CPU is read "
        f"from /proc in clock ticks ({1000 // os.sysconf('SC_CLK_TCK')} ms): per point it is a mean over "
        "the runs, so few runs at small sizes give coarse CPU figures.",
        markup=False,
    )
