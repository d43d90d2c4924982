"""What metrics cost the hot path: the same measurement without and with metrics, compared.

The benchmarks that take ``--compare-metrics`` run both variants interleaved in
one run (alternating runs or blocks, so drift and other load on the machine hit
both alike) and report each variant's distribution and the ratio with/without at
p50 and p99. The budget is ``LIMIT_RATIO`` (metrics may add at most 5%).

``scrape`` reads a ``/metrics`` endpoint the way Prometheus would, so a run with
metrics also proves that the instruments it paid for were exported.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from rich.table import Table

from failover.bench.report import fmt_ms, out
from failover.stats import Latency

LIMIT_RATIO = 1.05
PERCENTILES = (50, 99)


def ratio(off: Latency, on: Latency, pct: float) -> float | None:
    """``on / off`` at the ``pct`` percentile (None when either is empty or ``off`` is 0)."""
    a, b = off.percentile_us(pct), on.percentile_us(pct)
    if not a or b is None:
        return None
    return round(b / a, 3)


def compare(off: Latency, on: Latency) -> dict[str, Any]:
    """Each percentile without and with metrics (us), their ratio, and whether it is within budget."""
    doc: dict[str, Any] = {"count_off": off.count, "count_on": on.count}
    within = True
    for p in PERCENTILES:
        r = ratio(off, on, p)
        doc[f"p{p}_off_us"] = off.percentile_us(p)
        doc[f"p{p}_on_us"] = on.percentile_us(p)
        doc[f"p{p}_ratio"] = r
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


def render(title: str, rows: list[tuple[str, Latency, Latency]], unit: str = "ms") -> None:
    """One row per measure: p50 and p99 without and with metrics, and on/off."""
    t = Table(title=title, title_justify="left")
    t.add_column("measure")
    t.add_column("n off/on", justify="right")
    for p in PERCENTILES:
        for col in (f"p{p} off {unit}", f"p{p} on {unit}", f"p{p} on/off"):
            t.add_column(col, justify="right")
    for label, off, on in rows:
        cells = [label, f"{off.count}/{on.count}"]
        for p in PERCENTILES:
            cells += [
                _v(off.percentile_us(p), unit),
                _v(on.percentile_us(p), unit),
                _fmt_ratio(ratio(off, on, p)),
            ]
        t.add_row(*cells)
    out.print(t)
    out.print(
        f"on/off = the percentile with metrics / without (budget: at most {LIMIT_RATIO:.2f}); "
        "both histograms come from the same run, interleaved"
    )


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
