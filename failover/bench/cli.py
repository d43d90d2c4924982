"""``failover bench``: control-plane and fan-out benchmarks on loopback.

Mounted by the main CLI as ``app.add_typer(bench_app, name="bench")``; also
runnable alone: ``python -m failover.bench.cli control-plane --runs 20``.

Progress goes to stderr, the header and result table to stdout, raw results
(every sample) to ``--json FILE``. Exit codes: 0 done, 1 a measurement
failed (the message says which; logs are kept and their directory printed),
130 interrupted. Every process a run starts is stopped by its pid on the way
out, also on Ctrl-C, SIGTERM and errors.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from failover.bench.common import Cluster
from failover.bench.report import (
    BenchFailure,
    command_line,
    fmt_ms,
    out,
    print_header,
    print_stats,
    sigterm_as_interrupt,
    write_results,
)
from failover.bench.tls_variant import TlsMode, tls_pairs
from failover.cli_values import finite_seconds
from failover.machine import MachineLoad, load_line

bench_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmarks on a real loopback cluster (etcd + coordinator processes started and stopped here).",
)

JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Write raw results (every sample, in us) to this file.")
]
KeepLogs = Annotated[
    bool, typer.Option("--keep-logs", help="Keep the coordinator logs also after a clean run.")
]
TlsOption = Annotated[
    TlsMode,
    typer.Option(
        "--tls",
        help="off: plaintext; on: mTLS everywhere; both: each row plaintext then mTLS, with the ratio.",
    ),
]
MaxSeconds = Annotated[
    float,
    typer.Option(
        "--max-seconds",
        min=10,
        callback=finite_seconds,
        help="Give up (exit 1) when the whole run takes longer.",
    ),
]


def _timing_defaults() -> dict[str, Any]:
    from coordinator.config import ElectionSection, EtcdSection, HealthSection, StreamSection

    e, el, h, s = EtcdSection(), ElectionSection(), HealthSection(), StreamSection()
    return {
        "election.lease_ttl_s": el.lease_ttl_s,
        "election.keepalive_ms": el.keepalive_ms,
        "etcd.rpc_timeout_ms": e.rpc_timeout_ms,
        "health.collect_timeout_ms": h.collect_timeout_ms,
        "stream.heartbeat_interval_ms": s.heartbeat_interval_ms,
        "stream.ping_interval_ms": s.ping_interval_ms,
    }


def _execute(
    main: Callable[[], Coroutine[Any, Any, None]],
    clusters: list[Cluster],
    doc: dict[str, Any],
    json_path: Path | None,
    render: Callable[[], None],
) -> None:
    """Run ``main``; whatever happens, stop every process it started, then report."""
    code = 0
    started = time.monotonic()
    load = MachineLoad()
    with sigterm_as_interrupt():  # also while stopping: a second SIGTERM must not skip the rest
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            code = 130
            doc["error"] = "interrupted"
        except Exception as exc:  # BenchFailure or anything unexpected: one clear message
            code = 1
            while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                first = exc.exceptions[0]
                if not isinstance(first, Exception):
                    break
                exc = first
            doc["error"] = str(exc) if isinstance(exc, BenchFailure) else f"{type(exc).__name__}: {exc}"
            for c in clusters:
                c.failed = True
        finally:
            for c in clusters:
                c.stop()
    doc["ok"] = code == 0
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    doc["machine_load"] = ml = load.finish()
    render()
    out.print(load_line(ml))
    write_results(json_path, doc)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
        raise typer.Exit(code)


# --- control-plane -----------------------------------------------------------


@bench_app.command("control-plane")
def control_plane(
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="Repetitions.")] = 20,
    replicas: Annotated[int, typer.Option("--replicas", min=2, max=9, help="Coordinator processes.")] = 3,
    etcd_members: Annotated[int, typer.Option("--etcd-members", min=1, max=7, help="etcd members.")] = 3,
    commits: Annotated[
        int,
        typer.Option("--commits", min=1, max=100, help="Switches per run to the leader and to followers."),
    ] = 5,
    rpc_timeout: Annotated[
        float,
        typer.Option(
            "--rpc-timeout",
            min=0.05,
            callback=finite_seconds,
            help="Timeout (s) per Switch attempt in failover.",
        ),
    ] = 0.5,
    run_timeout: Annotated[
        float,
        typer.Option(
            "--run-timeout",
            min=1,
            callback=finite_seconds,
            help="Bound (s) on each wait (failover, restart).",
        ),
    ] = 30.0,
    groups: Annotated[
        int,
        typer.Option(
            "--groups",
            min=1,
            max=5000,
            help="Route groups the coordinators manage (the Switches go to one; the leader's "
            "decision pass covers all).",
        ),
    ] = 1,
    max_seconds: MaxSeconds = 3600,
    json_path: JsonOut = None,
    keep_logs: KeepLogs = False,
) -> None:
    """Commit latency (leader / forwarded), leader SIGKILL -> commit, SIGTERM hand-off."""
    from failover.bench.control_plane import ControlPlaneBench

    params = {
        "runs": runs,
        "replicas": replicas,
        "etcd_members": etcd_members,
        "commits": commits,
        "rpc_timeout": rpc_timeout,
        "run_timeout": run_timeout,
        "groups": groups,
    }
    cmd = command_line("control-plane", params)
    timing = _timing_defaults()
    machine = print_header(
        "failover bench control-plane",
        cmd,
        params,
        etcd=True,
        extra={
            "setup": f"{etcd_members} etcd member(s), {replicas} coordinator processes, group cme-orders "
            f"(primary, backup){f' and {groups - 1} more like it' if groups > 1 else ''}; "
            "everything on 127.0.0.1",
            "timing": ", ".join(f"{k}={v}" for k, v in timing.items()) + " (coordinator defaults)",
        },
    )
    extra = tuple(f"bench-g{i}" for i in range(1, groups))
    cluster = Cluster("control-plane", replicas, etcd_members, keep_logs=keep_logs, extra_groups=extra)
    deadline = time.monotonic() + max_seconds
    bench = ControlPlaneBench(
        cluster,
        runs=runs,
        commits=commits,
        rpc_timeout_s=rpc_timeout,
        run_timeout_s=run_timeout,
        deadline=deadline,
    )
    doc: dict[str, Any] = {
        "benchmark": "control-plane",
        "command": cmd,
        "machine": machine,
        "params": params,
        "setup": {"etcd_members": etcd_members, "replicas": replicas, "coordinator_timing": timing},
    }

    async def main() -> None:
        try:
            cluster.start()
            await bench.run()
        finally:
            await cluster.aclose()

    def render() -> None:
        doc["results"] = {k: s.to_json() for k, s in bench.stats.items()}
        doc["runs"] = bench.details
        doc["incidents"] = bench.incidents
        doc["handover_commits"] = bench.handover_commits
        print_stats(f"control plane: {len(bench.details)}/{runs} runs", list(bench.stats.values()))
        hc = bench.handover_commits
        if hc:
            wrong = [i + 1 for i, n in enumerate(hc) if n != 1]
            colour = "yellow" if wrong else "green"
            which = ", ".join(f"run {i}: {hc[i - 1]}" for i in wrong)
            out.print(
                f"[{colour}]graceful hand-overs: {len(hc) - len(wrong)} of {len(hc)} committed their one "
                f"Switch exactly once[/{colour}]" + (f" (commits per run: {which})" if wrong else "")
            )
        if bench.incidents:
            out.print(
                f"[yellow]WARNING:[/yellow] {len(bench.incidents)} time(s) a replica reported an etcd "
                "restore that never happened (it would refuse every commit as leader); each was restarted "
                "(runs " + ", ".join(str(i["run"]) for i in bench.incidents) + "; details under 'incidents' "
                "in the JSON)."
            )

    _execute(main, [cluster], doc, json_path, render)


# --- fanout --------------------------------------------------------------------


def _int_list(value: str, name: str, lo: int, hi: int) -> list[int]:
    try:
        items = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{value!r}: comma-separated integers expected", param_hint=name) from None
    if not items or any(not lo <= x <= hi for x in items):
        raise typer.BadParameter(f"{value!r}: each value must be in {lo}..{hi}", param_hint=name)
    return items


def _replicas(res: dict[str, Any]) -> str:
    """R, or R+N when N more replicas served the streams only."""
    only = int(res.get("stream_only_replicas") or 0)
    return f"{res['replicas'] - only}+{only} stream-only" if only else str(res["replicas"])


@bench_app.command("fanout")
def fanout(
    streams: Annotated[
        str, typer.Option("--streams", help="Stream counts S, comma-separated.")
    ] = "1,100,1000",
    replicas: Annotated[str, typer.Option("--replicas", help="Comma-separated replica counts R.")] = "1,3",
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="Switches per combination.")] = 20,
    channels_per_replica: Annotated[
        int, typer.Option("--channels-per-replica", min=1, max=64, help="gRPC connections per replica.")
    ] = 4,
    channel_per_stream: Annotated[
        bool,
        typer.Option(
            "--channel-per-stream",
            help="One HTTP/2 connection per stream, as real sidecars have (per-connection costs such as "
            "keepalive pings included); overrides --channels-per-replica.",
        ),
    ] = False,
    run_timeout: Annotated[
        float,
        typer.Option(
            "--run-timeout",
            min=1,
            callback=finite_seconds,
            help="Bound (s) on each decision reaching every stream.",
        ),
    ] = 10.0,
    pause_ms: Annotated[int, typer.Option("--pause-ms", min=0, max=10_000, help="Pause between runs.")] = 100,
    as_sidecars: Annotated[
        bool,
        typer.Option(
            "--as-sidecars",
            help="Streams report health as sidecars do (full state once, the route after each decision).",
        ),
    ] = False,
    tls_mode: TlsOption = TlsMode.off,
    idle_seconds: Annotated[
        float,
        typer.Option(
            "--idle-seconds",
            min=0,
            max=600,
            help="Before the runs, measure the coordinators' CPU this long with the streams idle "
            "(ms of CPU per second per 1,000 streams).",
        ),
    ] = 0.0,
    operator_during_fanout: Annotated[
        bool,
        typer.Option(
            "--operator-during-fanout",
            help="Per run, time operator replies from a thread of their own: an idle commit (a Switch of "
            "a group no stream subscribes to), the Switch that causes the fan-out, and a second Switch "
            "sent when the first stream has the decision (while the rest are pushed).",
        ),
    ] = False,
    etcd_watch: Annotated[
        bool,
        typer.Option(
            "--etcd-watch",
            help="After each row's runs, the same runs with the streams closed and S etcd watches on the "
            "routes instead (as many connections to etcd as the streams had): sidecars watching etcd "
            "directly, side by side. Plaintext only (--tls off).",
        ),
    ] = False,
    bare_floor: Annotated[
        bool,
        typer.Option(
            "--bare-floor",
            help="After each row's runs, the same S streams and runs against a bare grpc.aio "
            "push-with-acks process (failover/bench/fanout_bare.py: one decision written to every "
            "stream, acks read; nothing else): the floor, with ours over it as a ratio. "
            "Plaintext only (--tls off).",
        ),
    ] = False,
    stream_replicas: Annotated[
        int,
        typer.Option(
            "--stream-replicas",
            min=0,
            max=9,
            help="Start this many more replicas with election.campaign: false and open every stream "
            "on them: the R replicas that campaign (the leader among them) serve no stream, as in the "
            "stream-only topology of docs/deploy.md. 0: streams spread over the R replicas.",
        ),
    ] = 0,
    split_cores: Annotated[
        bool,
        typer.Option(
            "--split-cores",
            help="Pin etcd, the replicas that campaign and the operator probe to one half of the CPUs, "
            "and the stream-only replicas and the bench's streams to the other: the deployed shape "
            "(sidecars and stream-only replicas on other machines) on one box. Needs --stream-replicas "
            "and at least 2 CPUs.",
        ),
    ] = False,
    max_seconds: MaxSeconds = 3600,
    json_path: JsonOut = None,
    keep_logs: KeepLogs = False,
) -> None:
    """Commit (seen by our own etcd watch) -> decision received on every one of S streams."""
    from failover.bench.fanout import run_combination
    from failover.bench.operator_probe import QUIET
    from failover.bench.tls_variant import BenchPki, label, variants

    tls = tls_mode.value
    if etcd_watch and tls != "off":
        raise typer.BadParameter("--etcd-watch runs with --tls off only", param_hint="--etcd-watch")
    if bare_floor and tls != "off":
        raise typer.BadParameter("--bare-floor runs with --tls off only", param_hint="--bare-floor")

    if split_cores and stream_replicas < 1:
        raise typer.BadParameter(
            "--split-cores needs --stream-replicas 1 or more (the streams' side of the split)",
            param_hint="--split-cores",
        )
    if split_cores:
        from failover.bench.cores import CoreSplitError, halves

        try:
            halves()
        except CoreSplitError as exc:
            raise typer.BadParameter(str(exc), param_hint="--split-cores") from None
    s_list = _int_list(streams, "--streams", 1, 5000)
    r_list = _int_list(replicas, "--replicas", 1, 9)
    params = {
        "streams": streams,
        "replicas": replicas,
        "runs": runs,
        "channels_per_replica": channels_per_replica,
        "channel_per_stream": channel_per_stream,
        "run_timeout": run_timeout,
        "pause_ms": pause_ms,
        "as_sidecars": as_sidecars,
        "tls": tls,
        "idle_seconds": idle_seconds,
        "operator_during_fanout": operator_during_fanout,
        "etcd_watch": etcd_watch,
        "bare_floor": bare_floor,
        "stream_replicas": stream_replicas,
        "split_cores": split_cores,
    }
    cmd = command_line("fanout", params)
    timing = _timing_defaults()
    machine = print_header(
        "failover bench fanout",
        cmd,
        params,
        etcd=True,
        extra={
            "setup": "per (S, R): a fresh 1-member etcd (1 member is enough here: fan-out, not consensus, "
            "is measured) and R coordinator processes; S streams in this process, auto-acking",
            "timing": ", ".join(f"{k}={v}" for k, v in timing.items()) + " (coordinator defaults)",
            **(
                {
                    "tls": f"--tls {tls}: each row as {' then '.join(label(v) for v in variants(tls))} "
                    "(certificates from a throwaway dev CA); with TLS, or both, every stream has its own "
                    "connection and certificate (sidecar/bench-NNNNN), as real sidecars do"
                }
                if tls != "off"
                else {}
            ),
        },
    )
    clusters: list[Cluster] = []
    results: list[dict[str, Any]] = []
    doc: dict[str, Any] = {
        "benchmark": "fanout",
        "command": cmd,
        "machine": machine,
        "params": params,
        "setup": {"etcd_members": 1, "coordinator_timing": timing},
        "results": results,
    }
    deadline = time.monotonic() + max_seconds

    async def main() -> None:
        pki = BenchPki() if tls != "off" else None
        try:
            for s in s_list:
                for r in r_list:
                    for secure in variants(tls):
                        only = f"+{stream_replicas} stream-only" if stream_replicas else ""
                        name = f"S={s} R={r}{only}" + (f" {label(secure)}" if tls != "off" else "")
                        cluster = Cluster(
                            f"fanout-s{s}-r{r}-{label(secure)}",
                            r,
                            1,
                            keep_logs=keep_logs,
                            pki=pki if secure else None,
                            extra_groups=(QUIET,) if operator_during_fanout else (),
                            streams_only=stream_replicas,
                        )
                        clusters.append(cluster)
                        results.append(
                            await run_combination(
                                cluster,
                                streams=s,
                                runs=runs,
                                channels_per_replica=channels_per_replica,
                                run_timeout_s=run_timeout,
                                pause_s=pause_ms / 1000,
                                deadline=deadline,
                                label=name,
                                as_sidecars=as_sidecars,
                                channel_per_stream=channel_per_stream or tls != "off",
                                idle_seconds=idle_seconds,
                                operator_during_fanout=operator_during_fanout,
                                etcd_watch=etcd_watch,
                                bare_floor=bare_floor,
                                split_cores=split_cores,
                            )
                        )
        finally:
            if pki is not None:
                pki.remove()

    def render() -> None:
        t = Table(
            title=f"fan-out: t_commit (own etcd watch) -> decision received, {runs} runs per row",
            title_justify="left",
        )
        for col in ("S streams", "R replicas", "tls", "runs"):
            t.add_column(col, justify="right")
        for col in ("last p50", "last p99", "last max", "all n", "all p50", "all p99", "all max"):
            t.add_column(col + (" ms" if col != "all n" else ""), justify="right")
        for res in results:
            last, every = res["last_stream"], res["all_streams"]
            t.add_row(
                str(res["streams"]),
                _replicas(res),
                res.get("tls", "insecure"),
                str(last.get("count", 0)),
                fmt_ms(last.get("p50_ms")),
                fmt_ms(last.get("p99_ms")),
                fmt_ms(last.get("max_ms")),
                str(every.get("count", 0)),
                fmt_ms(every.get("p50_ms")),
                fmt_ms(every.get("p99_ms")),
                fmt_ms(every.get("max_ms")),
            )
        out.print(t)
        out.print(
            "t_commit = this process's own etcd watch on the routes delivers the new revision. "
            "last = per run, t_commit -> the last of the S streams has the decision; "
            "all = every stream of every run. etcd: 1 member."
        )
        c = Table(title="context per (S, R)", title_justify="left")
        for col in ("S", "R", "tls", "first p50 ms", "first max ms", "samples <= 0"):
            c.add_column(col, justify="right")
        for col in ("switch->commit p50 ms", "switch reply p50 ms", "switch reply max ms"):
            c.add_column(col, justify="right")
        c.add_column("CPU ms per run: bench / coordinators / etcd (wall ms)", justify="right")
        for res in results:
            first, every = res["first_stream"], res["all_streams"]
            tc, tr = res["switch_to_commit"], res["switch_reply"]
            w = res["mean_window"]
            coord, etcd = _cpu_split(w["cpu_ms"])
            c.add_row(
                str(res["streams"]),
                _replicas(res),
                res.get("tls", "insecure"),
                fmt_ms(first.get("p50_ms")),
                fmt_ms(first.get("max_ms")),
                f"{every.get('clamped_to_1us', 0)}/{every.get('count', 0)}",
                fmt_ms(tc.get("p50_ms")),
                fmt_ms(tr.get("p50_ms")),
                fmt_ms(tr.get("max_ms")),
                f"{w['cpu_ms'].get('bench', 0):.0f} / {coord:.0f} / {etcd:.0f} ({w['wall_ms']:.0f})",
            )
        idle_rows = [r for r in results if r.get("idle")]
        if idle_rows:
            it = Table(title=f"idle streams: coordinator CPU over {idle_seconds:g} s", title_justify="left")
            for col in ("S", "R", "CPU ms/s, all replicas", "per 1,000 streams ms/s", "bench ms/s"):
                it.add_column(col, justify="right")
            for res in idle_rows:
                idle = res["idle"]
                it.add_row(
                    str(res["streams"]),
                    _replicas(res),
                    f"{idle['coordinator_cpu_ms_per_s_total']:.1f}",
                    f"{idle['coordinator_cpu_ms_per_s_per_1000_streams']:.1f}",
                    f"{idle['bench_cpu_ms_per_s']:.1f}",
                )
            out.print(it)
        if results:
            out.print(c)
            out.print(
                "samples <= 0: a stream had the decision before the watch's event was processed here "
                "(recorded as 1 us; signed values in the JSON). CPU: mean per run, from just before the "
                "Switch until the last stream had it."
            )
        op_rows = [r for r in results if r.get("operator")]
        if op_rows:
            _render_operator(op_rows)
        watch_rows = [r for r in results if r.get("etcd_watch")]
        if watch_rows:
            _render_etcd_watch(watch_rows)
        bare_rows = [r for r in results if r.get("bare_floor")]
        if bare_rows:
            _render_bare_floor(bare_rows)
        if tls == "both" and results:
            from failover.bench.tls_variant import fanout_comparison

            out.print(fanout_comparison(results))
            doc["tls_comparison"] = tls_pairs(results)

    _execute(main, clusters, doc, json_path, render)


def _render_operator(rows: list[dict[str, Any]]) -> None:
    """Operator replies while a decision is pushed, against the idle commit of the same run."""
    t = Table(
        title="operator replies during the fan-out (ms; ratio = p99 / idle commit p99)", title_justify="left"
    )
    for col in ("S", "R", "call", "n", "p50", "p99", "max", "x idle p99"):
        t.add_column(col, justify="right")
    for res in rows:
        op = res["operator"]
        base = op["idle_commit"].get("p99_ms") or 0.0
        calls = (
            ("idle commit", op["idle_commit"]),
            ("fan-out switch", res["switch_reply"]),
            ("switch during fan-out", op["switch_during_fanout"]),
            ("etcd txn during fan-out (floor)", op.get("etcd_txn_during_fanout") or {}),
            ("last stream (from t_commit)", res["last_stream"]),
        )
        for name, lat in calls:
            p99 = lat.get("p99_ms")
            t.add_row(
                str(res["streams"]),
                _replicas(res),
                name,
                str(lat.get("count", 0)),
                fmt_ms(lat.get("p50_ms")),
                fmt_ms(p99),
                fmt_ms(lat.get("max_ms")),
                f"{p99 / base:.1f}"
                if base and p99 is not None and name != "last stream (from t_commit)"
                else "",
            )
    out.print(t)
    out.print(
        "Replies timed on the bench's own operator thread and loop (not behind the S streams' reads). "
        "idle commit: a Switch of a group no stream subscribes to, nothing in progress; switch during "
        "fan-out: the same, sent when the first stream has the decision ("
        + ", ".join(
            f"{r['operator']['during_sent_before_last_stream']}/{r['operator']['switch_during_fanout']['count']}"
            for r in rows
        )
        + " sent before the last stream had it); etcd txn during fan-out: a bare etcd transaction of "
        "a commit's shape sent by the same process at the same moment (plaintext rows only): what any "
        "etcd client waits then, on the same cores."
    )


def _cpu_split(cpu_ms: dict[str, float]) -> tuple[float, float]:
    """A run window's CPU (ms) of the coordinators (c1, c2, ... and stream-only s1, ...) and of
    etcd's members, each summed."""
    coord = sum(v for k, v in cpu_ms.items() if k[:1] in ("c", "s"))
    etcd = sum(v for k, v in cpu_ms.items() if k.startswith("etcd"))
    return coord, etcd


def _last_cells(last: dict[str, Any], every: dict[str, Any]) -> list[str]:
    """n, last p50 / p99 / max and all-receivers p50 (ms) of one side-by-side row."""
    return [
        str(last.get("count", 0)),
        fmt_ms(last.get("p50_ms")),
        fmt_ms(last.get("p99_ms")),
        fmt_ms(last.get("max_ms")),
        fmt_ms(every.get("p50_ms")),
    ]


def _render_etcd_watch(rows: list[dict[str, Any]]) -> None:
    """Our Sync streams against S etcd watches, same cluster, same switches."""
    t = Table(
        title="side by side: Sync streams (ours) vs sidecars watching etcd directly (t_commit -> last, ms)",
        title_justify="left",
    )
    for col in ("S", "R", "connections", "who", "n", "last p50", "last p99", "last max", "all p50"):
        t.add_column(col, justify="right")
    t.add_column("CPU per decision: coordinators / etcd ms", justify="right")
    t.add_column("per stream or watch µs", justify="right")
    t.add_column("etcd/ours last p50", justify="right")
    for res in rows:
        ew = res["etcd_watch"]
        ours_p50 = res["last_stream"].get("p50_ms")
        theirs_p50 = ew["last_watch"].get("p50_ms")
        for who, last, every, window in (
            ("ours", res["last_stream"], res["all_streams"], res["mean_window"]),
            ("etcd watch", ew["last_watch"], ew["all_watches"], ew["mean_window"]),
        ):
            coord, etcd = _cpu_split(window["cpu_ms"])
            server = coord if who == "ours" else etcd
            t.add_row(
                str(res["streams"]),
                _replicas(res),
                str(res["connections"] if who == "ours" else ew["connections"]),
                who,
                *_last_cells(last, every),
                f"{coord:.0f} / {etcd:.0f}",
                f"{server * 1000 / res['streams']:.0f}",
                f"{theirs_p50 / ours_p50:.2f}" if who != "ours" and ours_p50 and theirs_p50 else "",
            )
    out.print(t)
    out.print(
        "Same cluster and reference instant (the bench's own etcd watch); the watch runs follow the "
        "stream runs, with the streams closed. Per stream or watch: the serving side's CPU per decision "
        "(coordinators for ours, etcd for the watches) / S. A watch is one-way: no ack, no health back."
    )


FANOUT_TARGET = 0.6  # issue 13: ours at most 0.6x the bare floor's last-stream time


def _render_bare_floor(rows: list[dict[str, Any]]) -> None:
    """Our coordinators against a bare grpc.aio push-with-acks, same streams and runs."""
    t = Table(
        title="side by side: ours (t_commit -> last) vs a bare grpc.aio push-with-acks (t_push -> last), ms",
        title_justify="left",
    )
    for col in ("S", "R", "who", "n", "last p50", "last p99", "last max", "all p50"):
        t.add_column(col, justify="right")
    t.add_column("server CPU per stream and decision µs", justify="right")
    t.add_column("ours / bare last p50 (p99)", justify="right")
    for res in rows:
        b = res["bare_floor"]
        coord, _etcd = _cpu_split(res["mean_window"]["cpu_ms"])
        ours, bare = res["last_stream"], b["last_stream"]
        ratio = ""
        if ours.get("p50_ms") and bare.get("p50_ms") and bare.get("p99_ms"):
            ratio = f"{ours['p50_ms'] / bare['p50_ms']:.2f} ({ours['p99_ms'] / bare['p99_ms']:.2f})"
        for who, last, every, cpu_us, r in (
            ("ours", ours, res["all_streams"], coord * 1000 / res["streams"], ratio),
            ("bare grpc.aio", bare, b["all_streams"], b["cpu_us_per_stream_per_decision"], ""),
        ):
            t.add_row(
                str(res["streams"]),
                str(res["replicas"]) if who == "ours" else "1",
                who,
                *_last_cells(last, every),
                f"{cpu_us:.0f}",
                r,
            )
    out.print(t)
    out.print(
        f"The floor is one process serving the same S streams over the same connections; its clock starts "
        f"when the bench sends Push (one unary call, included). Target: ours <= {FANOUT_TARGET}x the floor."
    )


def _mount_more() -> None:
    """The data-plane and relay benchmarks live in their own packages."""
    from failover.bench.apply_latency import apply_latency
    from failover.bench.flip import flip
    from failover.bench.relay import relay

    bench_app.command("flip", help="Local flip time after a hard or silent failure (one process).")(flip)
    bench_app.command("apply-latency", help="Decision commit -> every sidecar applied (real processes).")(
        apply_latency
    )
    bench_app.command("relay", help="Relay round trip vs direct TCP, and relay throughput.")(relay)
    from failover.bench.growth import growth

    bench_app.command("growth", help="Fan-out over streams x replicas, or apply over hosts: slope, PNG.")(
        growth
    )
    from failover.bench.cli_startup import cli_startup
    from failover.bench.policy_pass import policy_pass
    from failover.bench.vs_haproxy import vs_haproxy

    bench_app.command("cli-startup", help="Operator command start-up: spawn -> connected to a coordinator.")(
        cli_startup
    )

    bench_app.command("policy-pass", help="The leader's decision pass after a commit: CPU per pass.")(
        policy_pass
    )

    bench_app.command("vs-haproxy", help="Ours vs tuned HAProxy, hard and silent failures, in one run.")(
        vs_haproxy
    )


_mount_more()

if __name__ == "__main__":
    try:
        bench_app()
    except KeyboardInterrupt:
        sys.exit(130)
