"""Printing the demo's timeline: one block per event, and a percentile summary."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.table import Table

from failover.demo.scenario import EventResult
from failover.stats import Latency


def _f(v: float) -> str:
    return "-" if v < 0 else f"{v:.2f}"


def render_event(r: EventResult, out: Console) -> None:
    if r.local:
        t = Table(title="local timeline, measured by each sidecar (ms)", title_justify="left")
        for col in ("host", "trigger", "cause", "detect", "flip", "first ack on new path"):
            t.add_column(col, justify="right" if col not in ("host", "trigger", "cause") else "left")
        for h, v in sorted(r.local.items()):
            t.add_row(
                h,
                str(v.get("trigger", "")),
                str(v.get("cause", "")),
                _f(v["detect_ms"]),
                _f(v["flip_ms"]),
                _f(v["first_ack_ms"]),
            )
        out.print(t)
    c = r.coordinated
    if c:
        parts = []
        for stage in ("detect", "forward", "decide", "commit"):
            if stage in c:
                parts.append(f"{stage} {c[stage]['ms']:.2f} ({c[stage]['where']})")
        push = c.get("push_to_ack_ms") or {}
        app = c.get("apply_ms") or {}
        if push:
            parts.append(f"push->ack {min(push.values()):.2f}..{max(push.values()):.2f} (replicas)")
        if app:
            parts.append(f"apply {max(app.values()):.3f} (sidecars)")
        out.print("coordinated timeline, per process (ms): " + " -> ".join(parts), highlight=False)
        if c.get("reason"):
            out.print(f"decision: {c['reason']}", highlight=False)
    if r.wall_ms:
        out.print(
            "end to end on this host's clock (ms): "
            + "; ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in r.wall_ms.items()),
            highlight=False,
        )
    o = r.orders
    if o:
        out.print(
            f"orders in the window: {o['sent']} sent -> {o['acked']} acked, {o['rejected']} rejected, "
            f"{o['in_doubt']} in doubt, {o['no_path']} no path, {o['pending']} pending; "
            f"order flow paused {r.pause_ms:.1f} ms (longest gap between acks on any host)",
            highlight=False,
        )
    for n in r.notes:
        out.print(n, highlight=False)


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max (ms) of samples in ms."""
    lat = Latency("summary", keep_samples=False)
    for v in values:
        lat.record_ms(v)
    return (lat.ms(50) or 0.0, lat.ms(99) or 0.0, lat.ms(None) or 0.0)


def render_summary(results: list[EventResult], out: Console, steady_pause_ms: float | None = None) -> None:
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    if steady_pause_ms is not None:
        # What each event's pause reads against: the same figure with no fault.
        series[("no fault", "order flow pause")].append(steady_pause_ms)
    for r in results:
        for k, v in r.wall_ms.items():
            series[(r.kind, k)].append(v)
        series[(r.kind, "order flow pause")].append(r.pause_ms)
        for loc in r.local.values():
            for stage in ("detect_ms", "flip_ms", "first_ack_ms"):
                if loc[stage] >= 0:
                    series[(r.kind, f"local {stage.removesuffix('_ms')}")].append(loc[stage])
        for stage in ("detect", "forward", "decide", "commit"):
            if stage in r.coordinated:
                series[(r.kind, f"coordinated {stage}")].append(r.coordinated[stage]["ms"])
        for k in ("push_to_ack_ms", "apply_ms"):
            for v in (r.coordinated.get(k) or {}).values():
                series[(r.kind, f"coordinated {k.removesuffix('_ms').replace('_', ' ')}")].append(v)
    t = Table(title=f"all events ({len(results)}), ms", title_justify="left")
    for col in ("event", "measure", "n", "p50", "p99", "max"):
        t.add_column(col, justify="right" if col in ("n", "p50", "p99", "max") else "left")
    for (kind, name), vals in series.items():
        p50, p99, mx = _percentiles(vals)
        t.add_row(kind, name.replace("_", " "), str(len(vals)), f"{p50:.2f}", f"{p99:.2f}", f"{mx:.2f}")
    out.print(t)
