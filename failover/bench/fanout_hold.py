"""Hold S sidecar-like streams open in a child process: ``python -m failover.bench.fanout_hold``.

The fan-out bench's stream client (``StreamFleet``) without the bench around it, for a
test that wants many streams on a cluster it runs itself (the fault tier's overload
row) and must start and stop them by pid, apart from its own event loop.

Every ``--every-ms`` it replaces ``--status FILE`` (written whole, then renamed) with a
summary: streams opened with their snapshot, streams ended or refused (by gRPC code,
with one detail each), how many streams hold each decision revision. On SIGTERM it
writes the full record once more, with every stream's receipt time per revision
(CLOCK_MONOTONIC ns: comparable with the test's ``time.monotonic_ns()`` on the same
host) and each stream's longest silence (also less the time this process's own loop
was blocked during it), then exits 0.

A refusal while opening (a replica shedding new streams, or at its stream limit) is
recorded, not fatal: the streams that opened are held and measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from failover.bench.common import BenchFailure
from failover.bench.fanout import StreamFleet


class OwnLateness:
    """When this process's own event loop ran late: every wake-up of a 20 ms timer that came
    5 ms or more after it was due, as the interval (start, end) in monotonic ns.

    A stream's silence as this process sees it includes the time its own loop could not
    read (1,000 streams in one process on starved cores): ``unexplained`` takes that out,
    leaving the silence of the replica and the network."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.blocked: list[tuple[int, int]] = []
        self.worst_ns = 0

    async def run(self) -> None:
        while True:
            asked = time.monotonic_ns()
            await asyncio.sleep(self.interval_s)
            now = time.monotonic_ns()
            late = now - asked - round(self.interval_s * 1e9)
            if late >= 5_000_000:
                self.blocked.append((now - late, now))
                self.worst_ns = max(self.worst_ns, late)

    def within(self, start: int, end: int) -> int:
        return sum(max(0, min(b, end) - max(a, start)) for a, b in self.blocked)

    def unexplained_ms(self, fleet: StreamFleet) -> list[float]:
        return [
            round((gap - self.within(end - gap, end)) / 1e6, 1)
            for gap, end in zip(fleet.max_gap_ns, fleet.max_gap_end_ns, strict=True)
        ]


def summary(fleet: StreamFleet, full: bool, own: OwnLateness | None = None) -> dict[str, Any]:
    codes: dict[str, int] = {}
    details: dict[str, str] = {}
    for e in list(fleet.errors.values()):
        code = e.split(":", 1)[0]
        codes[code] = codes.get(code, 0) + 1
        details.setdefault(code, e[:300])
    holding: dict[str, int] = {}
    for _era, rev in fleet.held:
        holding[str(rev)] = holding.get(str(rev), 0) + 1
    out: dict[str, Any] = {
        "streams": fleet.n,
        "ready": fleet.ready,
        "connections": fleet.connections,
        "errors": codes,
        "error_details": details,
        "received": {str(rev): len(ts) for rev, ts in list(fleet.arrivals.items())},
        "holding": holding,
        "pid": os.getpid(),
    }
    if full:
        out["arrivals_ns"] = {str(rev): list(ts) for rev, ts in fleet.arrivals.items()}
        out["errored"] = sorted(fleet.errors)
        out["max_gap_ms"] = [round(g / 1e6, 1) for g in fleet.max_gap_ns]
        if own is not None:
            out["max_gap_unexplained_ms"] = own.unexplained_ms(fleet)
            out["own_loop_worst_late_ms"] = round(own.worst_ns / 1e6, 1)
    return out


def write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


async def hold(addresses: list[str], streams: int, channels: int, status: Path, every_s: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    fleet = StreamFleet(addresses, streams, channels, as_sidecars=True, track_gaps=True)

    async def report() -> None:
        while True:
            write(status, summary(fleet, full=False))
            await asyncio.sleep(every_s)

    own = OwnLateness()
    monitor = asyncio.create_task(own.run())
    reporter = asyncio.create_task(report())
    opener = asyncio.create_task(fleet.open(timeout=max(30.0, streams / 20)))
    try:
        with contextlib.suppress(BenchFailure):  # refusals are recorded in fleet.errors
            await opener
        await stop.wait()
    finally:
        for task in (opener, reporter, monitor):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        write(status, summary(fleet, full=True, own=own))
        await fleet.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m failover.bench.fanout_hold", description=__doc__)
    ap.add_argument("--address", action="append", required=True, help="a replica (repeat)")
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--channels-per-replica", type=int, default=4)
    ap.add_argument("--status", type=Path, required=True)
    ap.add_argument("--every-ms", type=int, default=100)
    a = ap.parse_args(argv)
    if a.streams < 1:
        print("--streams: must be at least 1", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    rc = asyncio.run(hold(a.address, a.streams, a.channels_per_replica, a.status, a.every_ms / 1000))
    print(f"held {a.streams} streams for {time.monotonic() - t0:.1f}s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
