"""The growth curve as a PNG (matplotlib, Agg backend, imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover.bench.growth.fit import Fit

MISSING = "--png needs matplotlib, which is not installed (it is in the dev extra: pip install -e '.[dev]')"


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported."""


def require_matplotlib() -> None:
    """Fail early (before a long run) when the plot could not be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(MISSING) from None


def _series(points: list[dict[str, Any]], kind: str) -> dict[int, list[dict[str, Any]]]:
    by: dict[int, list[dict[str, Any]]] = {}
    for p in points:
        if p.get("reached"):
            by.setdefault(int(p["replicas"]), []).append(p)
    for rows in by.values():
        rows.sort(key=lambda r: r["streams" if kind == "fanout" else "hosts"])
    return by


def draw(
    path: Path,
    kind: str,
    points: list[dict[str, Any]],
    fits: dict[str, dict[str, Fit | None]],
    subtitle: str,
) -> None:
    """Left: last stream received (or last host applied) p50 with a bar up to p99; right: CPU.

    ``fits`` maps a series label (``R=3``) to its fitted lines (``time_p50``, ``cpu``),
    drawn dashed. Points not reached are listed under the plot with their reason.
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = "streams" if kind == "fanout" else "hosts"
    lat_key = "last_stream" if kind == "fanout" else "last_applied"
    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=90)
    for r, rows in sorted(_series(points, kind).items()):
        xs = [row[x_key] for row in rows]
        p50 = [row[lat_key]["p50_ms"] for row in rows]
        p99 = [row[lat_key]["p99_ms"] for row in rows]
        name = f"R={r}" if kind == "fanout" else f"{r} replicas"
        line = ax_t.errorbar(
            xs,
            p50,
            yerr=[[0.0] * len(xs), [b - a for a, b in zip(p50, p99, strict=True)]],
            marker="o",
            capsize=3,
            label=f"{name}: p50, bar to p99",
        )
        colour = line.lines[0].get_color()
        if kind == "fanout":
            cpu = [row["replica_cpu_us_per_stream_per_decision"] for row in rows]
            ax_c.plot(xs, cpu, marker="o", color=colour, label=f"{name}: replicas")
        else:
            coord = [row["coordinator_cpu_us_per_host_per_decision"] for row in rows]
            side = [row["sidecar_cpu_us_per_host_per_decision"] for row in rows]
            ax_c.plot(xs, coord, marker="o", color=colour, label="coordinators")
            ax_c.plot(xs, side, marker="s", linestyle=":", color=colour, label="sidecars")
        f = fits.get(name, {}).get("time_p50")
        if f is not None and len(xs) > 1:
            lo, hi = min(xs), max(xs)
            grid = [lo + (hi - lo) * i / 50 for i in range(51)]
            ax_t.plot(
                grid,
                [f.slope * x + f.intercept for x in grid],
                linestyle="--",
                color=colour,
                alpha=0.5,
                label=f"{name}: fit p50",
            )
    if kind == "fanout":
        from matplotlib.ticker import FuncFormatter

        for ax in (ax_t, ax_c):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax_t.set_xlabel("streams S")
        ax_c.set_xlabel("streams S")
        ax_t.set_ylabel("commit -> last stream received (ms)")
        ax_c.set_ylabel("replica CPU per stream per decision (µs)")
    else:
        ax_t.set_xlabel("sidecar hosts N")
        ax_c.set_xlabel("sidecar hosts N")
        ax_t.set_ylabel("commit -> last host applied (ms)")
        ax_c.set_ylabel("CPU per host per decision (µs)")
    for ax in (ax_t, ax_c):
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    missed = [p for p in points if not p.get("reached")]
    notes = "; ".join(
        f"{p.get('streams', p.get('hosts'))} {'streams' if kind == 'fanout' else 'hosts'}"
        f"{' R=' + str(p['replicas']) if kind == 'fanout' else ''} not reached ({p['category']})"
        for p in missed
    )
    fig.suptitle(subtitle, fontsize=9)
    if notes:
        fig.text(0.01, 0.01, notes, fontsize=7, color="firebrick")
    fig.tight_layout(rect=(0, 0.04 if notes else 0, 1, 0.95))
    fig.savefig(path, format="png")
    plt.close(fig)
