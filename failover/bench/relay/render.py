"""The relay benchmark's tables: round trips, where the relay's time goes, throughput and CPU."""

from __future__ import annotations

import os
from typing import Any

from rich.table import Table

from failover.bench import overhead
from failover.bench.relay.measure import Results
from failover.bench.report import fmt_us, out
from failover.stats import Latency

RELAY_TARGET = 1.2  # issue 13: the relay within 1.2x a bare gRPC relay measured in the same run


def added(res: Results, row: Latency | None = None) -> dict[str, float | None]:
    """A row (the sidecar's relay by default) minus direct, per statistic (us)."""
    d, r = res.direct.summary(), (row if row is not None else res.relay).summary()
    if not d.get("count") or not r.get("count"):
        return {}
    return {k: round(r[k] - d[k], 1) for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")}


def relay_over_bare(res: Results) -> dict[str, float]:
    """The sidecar's relay round trip over the bare gRPC relay's, same blocks, per statistic."""
    r, b = res.relay.summary(), res.bare_grpc.summary()
    if not r.get("count") or not b.get("count"):
        return {}
    return {k: round(r[k] / b[k], 3) for k in ("p50_us", "p99_us", "mean_us") if b.get(k)}


def render(res: Results) -> dict[str, dict[str, Any]]:
    """Print the tables; returns the metrics comparison (``overhead.compare`` per row; empty
    without ``--compare-metrics``), so its bootstrap is computed once."""
    over: dict[str, dict[str, Any]] = {}
    t = Table(title="round trip, one message outstanding (us)", title_justify="left")
    t.add_column("strategy ->")
    for col in ("n", "p50", "p90", "p99", "p99.9", "max", "mean"):
        t.add_column(col, justify="right")
    rows = [
        ("direct", res.direct, "venue: new -> ack"),
        ("relay", res.relay, "sidecar -> venue: send -> outcome ACKED"),
    ]
    if res.bare_grpc.count:
        rows.append(("bare_grpc", res.bare_grpc, "a bare gRPC relay -> venue, the floor"))
    if res.relay_metrics.count:
        rows.append(("relay_metrics", res.relay_metrics, "the same through the sidecar with /metrics"))
    for name, dist, what in rows:
        s = dist.summary()
        t.add_row(
            f"{name} ({what})",
            str(s.get("count", 0)),
            *(fmt_us(s.get(k)) for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")),
        )
    a = added(res)
    if a:
        t.add_row(
            "[bold]added by the sidecar (relay - direct)[/bold]",
            "",
            *(
                f"[bold]{fmt_us(a[k])}[/bold]"
                for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")
            ),
        )
    ab = added(res, res.bare_grpc)
    if ab:
        t.add_row(
            "added by the bare gRPC relay (bare_grpc - direct)",
            "",
            *(fmt_us(ab[k]) for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")),
        )
    out.print(t)
    ratio = relay_over_bare(res)
    if ratio:
        verdict = "within" if ratio["p50_us"] <= RELAY_TARGET and ratio["p99_us"] <= RELAY_TARGET else "over"
        out.print(
            f"sidecar relay / bare gRPC relay, same blocks: p50 {ratio['p50_us']:.2f}x, "
            f"p99 {ratio['p99_us']:.2f}x, mean {ratio['mean_us']:.2f}x "
            f"({verdict} the {RELAY_TARGET}x target at p50 and p99)"
        )
    if a:
        out.print(
            f"mean added latency: {a['p50_us']:,.0f} us at p50 (relay p50 - direct p50), "
            f"{a['mean_us']:,.0f} us on the means; each row's percentiles come from its own histogram, "
            "so the 'added' row is a difference of percentiles, not a percentile of differences"
        )
    if res.relay_metrics.count:
        over = overhead.render(
            "metrics overhead: relay round trip without (off) and with (on) metrics, same run",
            [("relay round trip", res.relay, res.relay_metrics)],
            unit="us",
        )
        if res.scraped:
            out.print(
                f"/metrics of the sidecar with metrics, scraped at the end: "
                f"{res.scraped['samples']} samples; "
                f"{res.scraped['orders_acked']:.0f} orders acked"
            )
    if res.relay_outside.count:
        sp = Table(
            title="where the relay round trip goes (us), by the sidecar's own stage timings",
            title_justify="left",
        )
        sp.add_column("stage")
        for col in ("n", "p50", "p90", "p99", "mean"):
            sp.add_column(col, justify="right")
        for dist, what in (
            (res.relay_queue, "queue: in the sidecar's order path until written to the primary session"),
            (res.relay_venue, "venue: written -> the venue's ack handled by the sidecar"),
            (res.relay_outside, "outside: the rest (gRPC both ways, client library, Relay handler, loops)"),
        ):
            sm = dist.summary()
            sp.add_row(
                what,
                str(sm["count"]),
                *(fmt_us(sm.get(k)) for k in ("p50_us", "p90_us", "p99_us", "mean_us")),
            )
        out.print(sp)
        out.print(
            "stage timings are whole microseconds measured inside the sidecar (Outcome.stages); "
            "outside = round trip - queue - venue, per message"
        )
    if res.latency_cpu:
        c = res.latency_cpu
        total = res.direct.count + res.relay.count
        out.print(
            f"CPU during the round trips ({total} messages, {c['wall_s']:.1f}s): "
            f"sidecar {c['sidecar']:.2f}s (loop thread {c['sidecar_main_thread']:.2f}s), "
            f"venue {c['venue']:.2f}s, strategy (this process) {c['strategy']:.2f}s, "
            f"others {c['other_processes']:.2f}s (other processes and kernel softirq time)"
        )
    if res.throughput:
        tt = Table(title="throughput: a sliding window of N messages outstanding", title_justify="left")
        for col in (
            "path",
            "in flight",
            "msgs",
            "msg/s",
            "rtt p50 us",
            "rtt p99 us",
            "sidecar CPU-s",
            "cores",
            "loop CPU-s",
            "msg/sidecar CPU-s",
            "less idle",
            "msg/loop CPU-s",
            "venue CPU-s",
            "strategy CPU-s",
            "others CPU-s",
        ):
            tt.add_column(col, justify="left" if col == "path" else "right")
        for row in res.throughput:
            cpu, rt = row["cpu_s"], row["round_trip"]
            relay = row["path"] != "direct"
            tt.add_row(
                row["path"],
                str(row["inflight"]),
                str(row["messages"]),
                f"{row['msgs_per_s']:,.0f}",
                fmt_us(rt.get("p50_us")),
                fmt_us(rt.get("p99_us")),
                f"{cpu['sidecar']:.2f}",
                f"{row['sidecar_cores']:.2f}",
                f"{cpu['sidecar_main_thread']:.2f}",
                fmt_us(row["sidecar_msgs_per_cpu_s"]) if relay else "-",
                fmt_us(row["sidecar_msgs_per_cpu_s_less_idle"]) if relay else "-",
                fmt_us(row["sidecar_msgs_per_main_thread_cpu_s"]) if relay else "-",
                f"{cpu['venue']:.2f}",
                f"{cpu['strategy']:.2f}",
                f"{cpu['other_processes']:.2f}",
            )
        out.print(tt)
        out.print(
            "msg/sidecar CPU-s = messages / the sidecar process's utime+stime over the row (all its "
            "threads; /proc ticks of "
            f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms): the messages one sidecar relays per second on one "
            "core. 'less idle' subtracts the sidecar's CPU at rest "
            f"({res.idle.get('sidecar_cores', 0) * 100:.1f}% of a core: heartbeats on two paths, the "
            "coordinator link retrying). loop thread = the sidecar's main thread (its asyncio loop) alone; "
            "the rest is gRPC's threads; 'msg/loop CPU-s' is the ceiling when that one thread is the "
            "bottleneck. On direct rows the sidecar is idle: its CPU is that rest load. "
            "cores = sidecar CPU-s / wall s: near 1.0, the sidecar was the bottleneck; otherwise the "
            "strategy, the venue or others (same 2 cores) were. others = machine busy time charged to none "
            "of the three processes: other processes and kernel softirq work (loopback packet delivery)."
        )
    return over
