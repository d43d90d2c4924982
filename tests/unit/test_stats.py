"""failover.stats.Latency: recorded in ns, held in us, reported in the unit each distribution names."""

from __future__ import annotations

from failover.stats import Latency


def test_units_and_percentiles() -> None:
    ms, us = Latency("a", "x"), Latency("b", unit="us", keep_samples=False)
    for i in range(1, 101):
        ms.record_ns(i * 1_000_000)  # 1..100 ms
        us.record_ns(i * 1_000)  # 1..100 us
    a, b = ms.summary(), us.summary()
    assert a["count"] == 100 and 49.9 <= a["p50_ms"] <= 50.1 and 99.9 <= a["max_ms"] <= 100.1
    assert a["mean_ms"] == 50.5
    assert b["count"] == 100 and b["p50_us"] == 50 and b["max_us"] == 100 and b["mean_us"] == 50.5
    assert "samples_us" not in us.to_json() and len(ms.to_json()["samples_us"]) == 100


def test_below_one_microsecond_is_clamped_in_the_histogram_and_kept_signed() -> None:
    signed, held = Latency("s"), Latency("h", unit="us", clamp_samples=True)
    for lat in (signed, held):
        lat.record_ns(-5_000)
    assert signed.samples_us == [-5] and held.samples_us == [1]
    assert signed.clamped == held.clamped == 1 and signed.min_us() == 1


def test_merge_and_empty() -> None:
    a, b = Latency("a"), Latency("b")
    assert a.summary() == {"count": 0} and a.ms(50) is None
    b.record_ms(2.5)
    a.merge(b)
    assert a.count == 1 and a.samples_us == [2500] and 2.49 <= (a.ms(None) or 0) <= 2.51
