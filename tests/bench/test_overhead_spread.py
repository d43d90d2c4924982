"""The metrics-overhead comparison's spread: a paired bootstrap of the on/off ratio (pure, no I/O)."""

from __future__ import annotations

import random

from failover.bench import overhead
from failover.stats import Latency


def _lat(samples_us: list[int]) -> Latency:
    lat = Latency("x", unit="us")
    for s in samples_us:
        lat.record_ns(s * 1000)
    return lat


def test_a_constant_factor_has_no_spread() -> None:
    """Every 'on' run 10 % slower than its paired 'off' run: each resample's ratio is 1.10."""
    rng = random.Random(1)
    off = [rng.randint(500, 5000) for _ in range(1000)]
    on = [round(x * 1.1) for x in off]
    s = overhead.ratio_spread(off, on, 99)
    assert s is not None
    assert s["paired"] is True and s["resamples"] == overhead.RESAMPLES
    assert 1.09 <= s["lo"] <= s["median"] <= s["hi"] <= 1.11


def test_the_same_distribution_spreads_around_one_and_is_deterministic() -> None:
    rng = random.Random(2)
    off = [rng.randint(500, 600) + (rng.random() < 0.02) * rng.randint(0, 50_000) for _ in range(1000)]
    on = [rng.randint(500, 600) + (rng.random() < 0.02) * rng.randint(0, 50_000) for _ in range(1000)]
    s = overhead.ratio_spread(off, on, 99)
    assert s is not None and s["lo"] < 1.0 < s["hi"]  # a heavy tail: p99 is noisy
    assert s == overhead.ratio_spread(off, on, 99)  # seeded: the same data, the same figures
    assert overhead.verdict(s) == "unresolved"


def test_verdicts() -> None:
    assert overhead.verdict({"lo": 0.95, "median": 1.0, "hi": 1.04}) == "within"
    assert overhead.verdict({"lo": 1.06, "median": 1.1, "hi": 1.2}) == "over"
    assert overhead.verdict({"lo": 0.98, "median": 1.03, "hi": 1.08}) == "unresolved"
    assert overhead.verdict(None) == "-"
    assert overhead.verdict({"lo": 1.2, "median": 1.3, "hi": 1.4, "tail_samples": 9}) == "too few runs"


def test_p99_needs_a_thousand_runs_for_a_verdict() -> None:
    """At p99 the spread is trusted from 10 samples beyond it: 999 runs are too few, 1,000 are not."""
    for n, want in ((999, "too few runs"), (1000, "within")):
        s = overhead.ratio_spread([1000] * n, [1001] * n, 99)
        assert s is not None and overhead.verdict(s) == want, (n, s)


def test_compare_reports_the_spread_of_both_percentiles() -> None:
    rng = random.Random(3)
    off = [rng.randint(1000, 2000) for _ in range(300)]
    doc = overhead.compare(_lat(off), _lat([x + 10 for x in off]))
    for p in (50, 99):
        sp = doc[f"p{p}_ratio_spread"]
        assert sp["level"] == overhead.SPREAD_LEVEL and sp["lo"] <= sp["median"] <= sp["hi"]
        assert doc[f"p{p}_verdict"] in ("within", "over", "unresolved", "too few runs")
    assert doc["p99_ratio"] is not None and doc["within_limit"] in (True, False)


def test_unpaired_or_empty_samples() -> None:
    assert overhead.ratio_spread([], [1, 2], 50) is None
    s = overhead.ratio_spread([100] * 10, [105] * 12, 50)
    assert s is not None and s["paired"] is False and s["lo"] == s["hi"] == 1.05


def test_long_rows_are_resampled_per_side_by_order_statistic() -> None:
    """Past PAIRED_MAX samples (the relay's default 100,000) each side is resampled on its own,
    by its order statistic: quick, and the same answer as the paired bootstrap on a constant
    factor (up to the unpaired range being wider)."""
    rng = random.Random(4)
    n = overhead.PAIRED_MAX + 1
    off = [rng.randint(500, 5000) for _ in range(n)]
    on = [round(x * 1.1) for x in off]
    s = overhead.ratio_spreads(off, on)
    for p in (50, 99):
        sp = s[p]
        assert sp is not None and sp["paired"] is False and sp["resamples"] == overhead.RESAMPLES
        assert 1.05 < sp["lo"] <= sp["median"] <= sp["hi"] < 1.15, sp
        assert overhead.verdict(sp) == "over"
