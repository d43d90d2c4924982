"""What metrics cost the hot path: the same measurement without and with metrics, compared.

The benchmarks that take ``--compare-metrics`` run both variants interleaved in
one run (alternating runs or blocks, so drift and other load on the machine hit
both alike) and report each variant's distribution and the ratio with/without at
p50 and p99. The budget is ``LIMIT_RATIO`` (metrics may add at most 5%).

A ratio of two p99s moves with a handful of tail samples, so each ratio comes with
its spread: a paired bootstrap (``ratio_spread``). Sample ``i`` of "off" and sample
``i`` of "on" were taken next to each other (the same alternation step or block),
so pairs are resampled together, keeping what drift they shared; the ratio is
recomputed on each of ``RESAMPLES`` resamples, and the central ``SPREAD_LEVEL`` of
those ratios is reported. A ratio over budget whose interval still reaches below
the budget is not resolved by the data ("unresolved"): more runs, or a quieter
machine, will tell; one whose whole interval is over the budget is a cost ("over").

``scrape`` reads a ``/metrics`` endpoint the way Prometheus would, so a run with
metrics also proves that the instruments it paid for were exported.
"""

from __future__ import annotations

import random
import urllib.request
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from failover.bench.report import fmt_ms, out
from failover.stats import Latency

LIMIT_RATIO = 1.05
PERCENTILES = (50, 99)
RESAMPLES = 1000  # bootstrap resamples per row (fewer for rows over 2,000 pairs)
SPREAD_LEVEL = 0.95  # the central share of the resampled ratios that is reported
PAIRED_MAX = 10_000  # longer rows: each side resampled on its own (see ratio_spreads)
SEED = 14  # fixed: the same samples always give the same interval
# Samples that must lie beyond a percentile before its spread means anything: the bootstrap of
# an extreme percentile is unreliable when it is one of the few largest samples (at p99: 1,000 runs).
MIN_TAIL = 10


def ratio(off: Latency, on: Latency, pct: float) -> float | None:
    """``on / off`` at the ``pct`` percentile (None when either is empty or ``off`` is 0)."""
    a, b = off.percentile_us(pct), on.percentile_us(pct)
    if not a or b is None:
        return None
    return round(b / a, 3)


def _at(xs: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of sorted ``xs`` by HdrHistogram's rank rule (the
    ``round(pct% of n)``-th smallest, at least the first), so a resample's percentile is
    the one ``Latency`` reports for the same samples (up to its 3 significant digits)."""
    return xs[max(1, int(pct / 100 * len(xs) + 0.5)) - 1]


def resamples_for(n: int) -> int:
    """``RESAMPLES``, fewer for long paired rows (the work is resamples x n; at that n the
    interval moves little between resamples)."""
    return max(200, min(RESAMPLES, RESAMPLES * 2000 // max(n, 1)))


def _order_stat(xs: Sequence[float], pct: float, rng: random.Random) -> float:
    """The ``pct`` percentile of one bootstrap resample of sorted ``xs``, drawn without building it:
    the r-th smallest of n uniform draws is Beta(r, n - r + 1), and it picks the sample."""
    n = len(xs)
    r = max(1, int(pct / 100 * n + 0.5))
    return xs[min(n - 1, int(rng.betavariate(r, n - r + 1) * n))]


def ratio_spreads(
    off: Sequence[float],
    on: Sequence[float],
    pcts: Sequence[float] = PERCENTILES,
    resamples: int | None = None,
    level: float = SPREAD_LEVEL,
    seed: int = SEED,
) -> dict[float, dict[str, Any] | None]:
    """For each of ``pcts``, the bootstrap spread of ``pct(on) / pct(off)``: ``lo``/``median``/``hi``
    over the resamples (``lo``..``hi`` holds the central ``level`` of them).

    Paired when both have as many samples, at most ``PAIRED_MAX`` (index ``i`` of each taken
    side by side: the pair is drawn together; each resample serves every percentile). Else
    each side is resampled on its own, by its order statistic (O(1) per resample: the relay's
    100,000 round trips); that ignores what drift the pairs shared, so its range is, if anything,
    wider. None without samples."""
    n_off, n_on = len(off), len(on)
    if not n_off or not n_on:
        return dict.fromkeys(pcts)
    paired = n_off == n_on <= PAIRED_MAX
    count = resamples if resamples is not None else (resamples_for(n_off) if paired else RESAMPLES)
    rng = random.Random(seed)
    ratios: dict[float, list[float]] = {p: [] for p in pcts}
    if paired:
        idx_range = range(n_off)
        for _ in range(count):
            idx = rng.choices(idx_range, k=n_off)
            a = sorted([off[i] for i in idx])
            b = sorted([on[i] for i in idx])
            for p in pcts:
                base = _at(a, p)
                if base > 0:
                    ratios[p].append(_at(b, p) / base)
    else:
        so, sn = sorted(off), sorted(on)
        for p in pcts:
            for _ in range(count):
                base = _order_stat(so, p, rng)
                if base > 0:
                    ratios[p].append(_order_stat(sn, p, rng) / base)
    tail = (1 - level) / 2
    spreads: dict[float, dict[str, Any] | None] = {}
    for p, rs in ratios.items():
        rs.sort()
        spreads[p] = (
            {
                "lo": round(_at(rs, 100 * tail), 3),
                "median": round(_at(rs, 50), 3),
                "hi": round(_at(rs, 100 * (1 - tail)), 3),
                "level": level,
                "resamples": count,
                "paired": paired,
                # samples beyond the percentile on the smaller side
                "tail_samples": int(min(n_off, n_on) * (1 - p / 100)),
            }
            if rs
            else None
        )
    return spreads


def ratio_spread(off: Sequence[float], on: Sequence[float], pct: float, **kw: Any) -> dict[str, Any] | None:
    """``ratio_spreads`` for one percentile."""
    return ratio_spreads(off, on, (pct,), **kw)[pct]


def verdict(spread: dict[str, Any] | None) -> str:
    """``within`` (all of the interval within budget), ``over`` (all of it over), else ``unresolved``;
    ``too few runs`` when fewer than ``MIN_TAIL`` samples lie beyond the percentile."""
    if spread is None:
        return "-"
    if spread.get("tail_samples", MIN_TAIL) < MIN_TAIL:
        return "too few runs"
    if spread["hi"] <= LIMIT_RATIO:
        return "within"
    if spread["lo"] > LIMIT_RATIO:
        return "over"
    return "unresolved"


def compare(off: Latency, on: Latency) -> dict[str, Any]:
    """Each percentile without and with metrics (us), their ratio and its bootstrap spread, and
    whether the ratio is within budget (``within_limit``: the ratios themselves; the verdicts
    say whether the data resolve them)."""
    doc: dict[str, Any] = {"count_off": off.count, "count_on": on.count}
    within = True
    kept = off.keep_samples and on.keep_samples
    spreads = ratio_spreads(off.samples_us, on.samples_us) if kept else dict.fromkeys(PERCENTILES)
    for p in PERCENTILES:
        r = ratio(off, on, p)
        doc[f"p{p}_off_us"] = off.percentile_us(p)
        doc[f"p{p}_on_us"] = on.percentile_us(p)
        doc[f"p{p}_ratio"] = r
        spread = spreads[p]
        doc[f"p{p}_ratio_spread"] = spread
        doc[f"p{p}_verdict"] = verdict(spread)
        within = within and r is not None and r <= LIMIT_RATIO
    doc["within_limit"] = within
    doc["limit_ratio"] = LIMIT_RATIO
    return doc


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    s = f"{r:.3f}"
    return s if r <= LIMIT_RATIO else f"[red]{s}[/red]"


def _v(us: float | None, unit: str) -> str:
    if us is None:
        return "-"
    return fmt_ms(us / 1000) if unit == "ms" else f"{us:,.0f}"


def _fmt_spread(s: dict[str, Any] | None) -> str:
    if s is None:
        return "-"
    lo, hi = f"{s['lo']:.3f}", f"{s['hi']:.3f}"
    return f"{lo if s['lo'] <= LIMIT_RATIO else f'[red]{lo}[/red]'}-{hi}"


def render(
    title: str, rows: list[tuple[str, Latency, Latency]], unit: str = "ms"
) -> dict[str, dict[str, Any]]:
    """One row per measure: p50 and p99 without and with metrics, on/off, and the spread of the
    p99 on/off (paired bootstrap) with its verdict; returns each row's ``compare`` (for the JSON,
    which also has the p50 spread)."""
    t = Table(title=title, title_justify="left")
    t.add_column("measure")
    t.add_column("n off/on", justify="right")
    for p in PERCENTILES:
        for col in (f"p{p} off {unit}", f"p{p} on {unit}", f"p{p} on/off"):
            t.add_column(col, justify="right")
    t.add_column(f"p99 on/off {SPREAD_LEVEL:.0%}", justify="right")
    t.add_column("p99 verdict")
    docs: dict[str, dict[str, Any]] = {}
    for label, off, on in rows:
        doc = docs[label] = compare(off, on)
        cells = [label, f"{off.count}/{on.count}"]
        for p in PERCENTILES:
            cells += [
                _v(off.percentile_us(p), unit),
                _v(on.percentile_us(p), unit),
                _fmt_ratio(doc[f"p{p}_ratio"]),
            ]
        t.add_row(*cells, _fmt_spread(doc["p99_ratio_spread"]), doc["p99_verdict"])
    out.print(t)
    out.print(
        f"on/off = the percentile with metrics / without (budget: at most {LIMIT_RATIO:.2f}); both "
        f"histograms come from the same run, interleaved. p99 on/off {SPREAD_LEVEL:.0%} = where the "
        f"central {SPREAD_LEVEL:.0%} of the ratio falls over paired bootstrap resamples (sample i without "
        "metrics drawn with sample i with them, taken next to it; rows over "
        f"{PAIRED_MAX:,} samples: each side resampled on its own). verdict: within = the whole range "
        f"<= {LIMIT_RATIO:.2f}; over = the whole range above it (a cost); unresolved = the range "
        "spans the budget (tail noise at this n: more runs or a quieter machine will tell); "
        f"too few runs = under {MIN_TAIL} samples beyond p99 (fewer than {100 * MIN_TAIL} runs per row)"
    )
    return docs


def instrument_cost(calls: int = 2000) -> dict[str, Latency]:
    """What one flip's measurements cost the caller, queued (as recorded) and straight into the SDK.

    A flip records a counter and three histogram samples (detect, flip, first ack). Each
    is timed here ``calls`` times, on providers of their own with a Prometheus reader (so
    the figures are not mixed into a run's exported metrics): ``queued`` through
    ``SidecarMetrics`` (``flipped`` + ``first_ack``), ``sdk`` the same four measurements
    recorded directly into the SDK's instruments, as before they were queued.
    """
    import time

    from failover_sidecar.metrics import SidecarMetrics

    from failover.telemetry import metrics as telemetry

    queued = Latency("queued", unit="us", keep_samples=False)
    sdk = Latency("sdk", unit="us", keep_samples=False)
    tq = telemetry.build("failover-sidecar", "cost-queued", listen="127.0.0.1:0")
    ts = telemetry.build("failover-sidecar", "cost-sdk", listen="127.0.0.1:0")
    try:
        sm = SidecarMetrics(tq.meter)
        hist = ts.meter.create_histogram("failover.stage.duration", unit="s")
        flips = ts.meter.create_counter("failover.flips", unit="{flip}")
        base = {"group": "cme-orders", "reason": "reset"}
        a_flips = {**base, "trigger": "local"}
        a_stage = [{**base, "stage": st} for st in ("detect", "flip", "first_ack")]
        for i in range(calls):
            t0 = time.perf_counter_ns()
            sm.flipped("cme-orders", "local", "reset", 200, 300)
            sm.first_ack("cme-orders", "reset", 400)
            t1 = time.perf_counter_ns()
            flips.add(1, a_flips)
            for a in a_stage:
                hist.record(0.0003, a)
            t2 = time.perf_counter_ns()
            if i % 500 == 499:  # a reader collects now and then, as a scrape would
                tq.provider.force_flush()
            queued.record_ns(t1 - t0)
            sdk.record_ns(t2 - t1)
    finally:
        tq.shutdown()
        ts.shutdown()
    return {"queued": queued, "sdk": sdk}


def scrape(port: int, prefix: str = "failover_") -> dict[str, float]:
    """``/metrics`` on 127.0.0.1:``port``, parsed: sample name (with labels) -> value, ours only."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310
        text = r.read().decode()
    samples: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith(prefix):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}"] = float(s.value)
    return samples
