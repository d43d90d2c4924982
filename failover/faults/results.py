"""Summarise the fault tier's measurements over runs: ``python -m failover.faults.results FILE...``.

Each FILE is what ``FAILOVER_FAULT_RESULTS`` collected in one run (JSON lines of
``{"fault", "seconds", "bound"}``, and the run's ``{"machine_load"}``). Prints one
line per measurement: runs, p50/p99/max (HdrHistogram, ``failover.stats.Latency``)
and the bound of the latest FILE; then the machine load of each run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from failover.stats import Latency


def summarise(paths: list[Path]) -> tuple[dict[str, tuple[Latency, float]], list[dict[str, Any]]]:
    rows: dict[str, tuple[Latency, float]] = {}
    loads: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if "machine_load" in rec:
                loads.append(rec["machine_load"])
                continue
            lat, _ = rows.get(rec["fault"], (Latency(rec["fault"]), 0.0))
            lat.record_ms(float(rec["seconds"]) * 1000)
            rows[rec["fault"]] = (lat, float(rec["bound"]))  # the bound of the latest run
    return rows, loads


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}"


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m failover.faults.results FILE...", file=sys.stderr)
        return 2
    rows, loads = summarise([Path(a) for a in argv])
    for name, (lat, bound) in rows.items():
        print(
            f"{name}: n={lat.count} p50 {_s(lat.ms(50))} s, p99 {_s(lat.ms(99))} s, "
            f"max {_s(lat.ms(None))} s (bound {bound:.1f} s)"
        )
    for load in loads:
        print(f"machine load: {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
