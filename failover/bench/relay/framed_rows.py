"""The framed rows of ``failover bench relay``: the sidecar's framed socket and a bare framed relay.

Run after the gRPC rows, in the same run, on the same venue and sidecar processes:

- ``framed``: the strategy library's ``FramedRelay`` over the sidecar's ``listen.framed_socket``
  (the same order path, ledger and outcomes as the gRPC relay);
- ``bare-framed``: the same client over a bare framed relay child (``bare_framed``: frames
  in, venue orders out on its own session, ACKED frames back; nothing else), the floor;
- ``direct``: the direct TCP strategy again, measured in the same alternating blocks, so
  each framed row's "added over direct TCP" compares figures taken side by side.

Round trips one at a time in alternating blocks (direct, framed, bare; the order rotates
per block), then throughput with the command's ``--inflight`` windows, then checks that
every message got exactly one answer (sidecar and venue counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from rich.table import Table

from failover.bench.relay.direct import check_direct
from failover.bench.relay.rig import GROUP, PAYLOAD, acked_check, bare_relay
from failover.bench.report import BenchFailure, fmt_us, out, progress
from failover.bench.serve_child import start_ready
from failover.machine import CpuWindow
from failover.stats import Latency

if TYPE_CHECKING:
    from failover_client.framed import FramedRelay

    from failover.bench.relay.measure import Bench

KINDS = ("direct", "framed", "bare-framed")
MAX_BLOCKS = 10
BLOCK_MIN = 500
READY_S = 30.0


def _dist(name: str) -> Latency:
    return Latency(name, unit="us", keep_samples=True, clamp_samples=True)


@dataclass
class FramedResults:
    dists: dict[str, Latency] = field(default_factory=lambda: {k: _dist(k) for k in KINDS})
    blocks: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    latency_cpu: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    loadavg_at_start: list[float] = field(default_factory=list)

    def added(self) -> dict[str, dict[str, float]]:
        """Each framed row minus direct TCP (same blocks), per statistic (us)."""
        d = self.dists["direct"].summary()
        res: dict[str, dict[str, float]] = {}
        for k in ("framed", "bare-framed"):
            s = self.dists[k].summary()
            if d.get("count") and s.get("count"):
                res[k] = {m: round(s[m] - d[m], 1) for m in ("p50_us", "p99_us", "max_us", "mean_us")}
        return res

    def to_json(self) -> dict[str, Any]:
        return {
            "latency": {k: v.to_json() for k, v in self.dists.items()},
            "added_over_direct_us": self.added(),
            "blocks": self.blocks,
            "latency_cpu_s": self.latency_cpu,
            "throughput": self.throughput,
            "checks": self.checks,
            "loadavg_at_start": self.loadavg_at_start,
        }


class FramedRows:
    """The bare framed relay child, the two framed clients, and the measurement over them."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.res = FramedResults()
        rig = bench.rig
        self.bare_socket = str(rig.sock_dir / "bare.sock")
        self.bare = bare_relay(
            "framed", self.bare_socket, rig.gateways["primary"], rig.workdir / "bare-framed.log"
        )
        self.clients: dict[str, FramedRelay] = {}
        self.sent = dict.fromkeys(KINDS, 0)

    # ---------------------------------------------------------------- setup

    async def setup(self) -> None:
        from failover_client.framed import FramedRelay

        from failover.bench.relay.rig import STRATEGY

        wd = self.bench.wd
        wd.phase = "starting the bare framed relay"
        await start_ready(self.bare, min(READY_S, wd.left()))
        progress(f"bare framed relay started (pid {self.bare.pid}) on unix:{self.bare_socket}")
        self.clients["framed"] = await FramedRelay.connect(self.bench.rig.framed_socket, STRATEGY)
        self.clients["bare-framed"] = await FramedRelay.connect(self.bare_socket, STRATEGY)

    def submitter(self, kind: str) -> tuple[Callable[[], asyncio.Future[Any]], Callable[[Any], None]]:
        if kind == "direct":
            direct = self.bench.direct
            assert direct is not None

            def submit_direct() -> asyncio.Future[Any]:
                self.sent["direct"] += 1
                return direct.submit()

            return submit_direct, check_direct
        client = self.clients[kind]

        def submit() -> asyncio.Future[Any]:
            self.sent[kind] += 1
            return client.submit(GROUP, PAYLOAD)[1]

        return submit, acked_check(kind)

    def pids(self) -> dict[str, int]:
        rig = self.bench.rig
        return {
            "sidecar": rig.sidecar.pid,
            "bare": self.bare.pid,
            "venue": rig.venue.pid,
            "strategy": os.getpid(),
        }

    # ---------------------------------------------------------------- phases

    async def latency(self) -> None:
        b, res = self.bench, self.res
        b.wd.measuring = True
        for kind in KINDS:
            b.wd.phase = f"framed rows: warm-up, {kind}"
            await b.one_at_a_time(*self.submitter(kind), b.warmup, None)
        blocks = max(1, min(MAX_BLOCKS, b.messages // BLOCK_MIN))
        base, extra = divmod(b.messages, blocks)
        cpu = CpuWindow(self.pids())
        for i in range(blocks):
            n = base + (1 if i < extra else 0)
            order = KINDS[i % 3 :] + KINDS[: i % 3]
            row: dict[str, Any] = {"block": i + 1, "messages": n, "order": list(order)}
            for kind in order:
                b.wd.phase = f"framed rows: round trips, block {i + 1}/{blocks}, {kind}"
                d = _dist(kind)
                await b.one_at_a_time(*self.submitter(kind), n, d)
                res.dists[kind].merge(d)
                row[kind] = {"p50_us": d.percentile_us(50), "p99_us": d.percentile_us(99)}
            res.blocks.append(row)
            progress(
                f"framed block {i + 1}/{blocks}: {n} each; p50 "
                + ", ".join(f"{k} {fmt_us(row[k]['p50_us'])} us" for k in KINDS)
            )
        res.latency_cpu = cpu.finish()
        b.wd.measuring = False

    async def throughput(self) -> None:
        b = self.bench
        total = b.throughput_messages
        for window in b.inflight:
            for kind in KINDS:
                submit, chk = self.submitter(kind)
                b.wd.measuring = True
                b.wd.phase = f"framed rows: throughput, {kind}, {window} in flight"
                await b.windowed(submit, chk, min(b.warmup, total), window, None)
                d = _dist(f"{kind}-{window}")
                cpu = CpuWindow(self.pids())
                t0 = time.monotonic()
                await b.windowed(submit, chk, total, window, d)
                wall = time.monotonic() - t0
                used = cpu.finish()
                b.wd.measuring = False
                relay_pid = {"framed": "sidecar", "bare-framed": "bare"}.get(kind)
                relay_cpu = used[relay_pid] if relay_pid else 0.0
                row = {
                    "path": kind,
                    "inflight": window,
                    "messages": total,
                    "wall_s": round(wall, 3),
                    "msgs_per_s": round(total / wall, 1),
                    "round_trip": d.summary(),
                    "cpu_s": used,
                    "relay_cpu_s": relay_cpu,
                    "relay_msgs_per_cpu_s": round(total / relay_cpu, 1) if relay_cpu > 0 else None,
                }
                self.res.throughput.append(row)
                progress(
                    f"throughput {kind}, {window} in flight: {row['msgs_per_s']:,.0f} msg/s"
                    + (f"; relay process {relay_cpu:.2f} CPU-s in {wall:.2f}s" if relay_pid else "")
                )
                await asyncio.sleep(0.2)

    async def checks(self, acked_before: int, venue_before: int) -> None:
        """Every framed message got exactly one answer: the sidecar and venue counters agree."""
        acked, venue = await self._counters()
        c = self.res.checks = {
            "sent": dict(self.sent),
            "sidecar_acked": acked - acked_before,
            "venue_orders": venue["orders"] - venue_before,
            "venue_duplicates": venue["duplicates"],
            "duplicate_outcomes": {k: c.duplicate_outcomes for k, c in self.clients.items()},
        }
        problems = []
        if c["sidecar_acked"] != self.sent["framed"]:
            problems.append(f"sidecar counted {c['sidecar_acked']} acked of {self.sent['framed']} framed")
        if c["venue_orders"] != sum(self.sent.values()):
            problems.append(f"venue booked {c['venue_orders']} orders, {sum(self.sent.values())} sent")
        if venue["duplicates"] or any(c["duplicate_outcomes"].values()):
            problems.append("duplicates (venue clordids or outcomes)")
        c["problems"] = problems
        if problems:
            raise BenchFailure("framed rows: " + "; ".join(problems))

    async def _counters(self) -> tuple[int, dict[str, int]]:
        from failover.v1 import venue_pb2, venue_pb2_grpc

        assert self.bench.sc is not None
        st = await self.bench.sc.status()
        async with grpc.aio.insecure_channel(self.bench.rig.venue_control) as ch:
            vc = await venue_pb2_grpc.VenueControlStub(ch).GetCounters(venue_pb2.CountersRequest(), timeout=5)
        return int(st.counters.get("acked", 0)), {"orders": int(vc.orders), "duplicates": int(vc.duplicates)}

    async def run(self) -> None:
        self.res.loadavg_at_start = [round(x, 2) for x in os.getloadavg()]
        try:
            await self.setup()
            acked0, venue0 = await self._counters()
            venue_orders0 = venue0["orders"]
            await self.latency()
            if self.bench.throughput_messages > 0:
                await self.throughput()
            self.bench.wd.phase = "framed rows: checks"
            await self.checks(acked0, venue_orders0)
        finally:
            await self.close()

    async def run_alone(self) -> None:
        """``--framed-only``: the venue and sidecar set up as for every row, then these rows alone."""
        try:
            await self.bench.setup()
            await self.run()
        finally:
            await self.bench.close()

    async def close(self) -> None:
        for c in self.clients.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 5)
        self.bare.stop(timeout=5)


def render_framed(res: FramedResults) -> None:
    """The framed rows' tables: round trips with 'added over direct TCP', then throughput."""
    if not res.dists["framed"].count:
        return
    t = Table(
        title="framed local transport: round trip, one message outstanding (us), same blocks",
        title_justify="left",
    )
    t.add_column("strategy ->")
    for col in ("n", "p50", "p90", "p99", "max", "mean"):
        t.add_column(col, justify="right")
    what = {
        "direct": "venue over TCP: new -> ack",
        "framed": "sidecar's framed socket -> venue: outcome ACKED",
        "bare-framed": "bare framed relay -> venue: outcome ACKED",
    }
    for k in KINDS:
        s = res.dists[k].summary()
        t.add_row(
            f"{k} ({what[k]})",
            str(s.get("count", 0)),
            *(fmt_us(s.get(m)) for m in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us")),
        )
    for k, a in res.added().items():
        t.add_row(
            f"[bold]added by {k} over direct[/bold]",
            "",
            f"[bold]{fmt_us(a['p50_us'])}[/bold]",
            "",
            f"[bold]{fmt_us(a['p99_us'])}[/bold]",
            f"[bold]{fmt_us(a['max_us'])}[/bold]",
            f"[bold]{fmt_us(a['mean_us'])}[/bold]",
        )
    out.print(t)
    if res.latency_cpu:
        c = res.latency_cpu
        out.print(
            f"CPU during the framed round trips ({c['wall_s']:.1f}s): sidecar {c['sidecar']:.2f}s, "
            f"bare relay {c['bare']:.2f}s, venue {c['venue']:.2f}s, strategy {c['strategy']:.2f}s, "
            f"others {c['other_processes']:.2f}s (other processes and kernel softirq time)",
            markup=False,
        )
    if res.throughput:
        tt = Table(title="framed throughput: a sliding window of N outstanding", title_justify="left")
        for col in (
            "path",
            "in flight",
            "msgs",
            "msg/s",
            "rtt p50 us",
            "rtt p99 us",
            "relay CPU-s",
            "msg/relay CPU-s",
            "others CPU-s",
        ):
            tt.add_column(col, justify="left" if col == "path" else "right")
        for row in res.throughput:
            rt = row["round_trip"]
            tt.add_row(
                row["path"],
                str(row["inflight"]),
                str(row["messages"]),
                f"{row['msgs_per_s']:,.0f}",
                fmt_us(rt.get("p50_us")),
                fmt_us(rt.get("p99_us")),
                f"{row['relay_cpu_s']:.2f}" if row["path"] != "direct" else "-",
                fmt_us(row["relay_msgs_per_cpu_s"]) if row["path"] != "direct" else "-",
                f"{row['cpu_s']['other_processes']:.2f}",
            )
        out.print(tt)
