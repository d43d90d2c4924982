"""The relay measurement: round trips one at a time (direct and relay in alternating blocks),
then throughput with N messages outstanding, then the counters that prove every message got
exactly one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from failover.bench.overhead import scrape
from failover.bench.relay.direct import DirectClient, check_direct
from failover.bench.relay.guard import Watchdog, bounded
from failover.bench.relay.rig import GROUP, PATHS, PAYLOAD, STRATEGY, Rig, acked_check, bare_relay
from failover.bench.report import BenchFailure, fmt_us, progress
from failover.bench.serve_child import start_ready
from failover.machine import CpuWindow
from failover.procs import Child
from failover.stats import Latency
from failover.wire import protocol as vp

if TYPE_CHECKING:  # imported when the run starts, not when the CLI parses its flags
    from failover_client.api import Sidecar

    from failover.bench.relay.framed_rows import FramedRows

DIRECT_SENDER = "bench-direct"
READY_TIMEOUT_S = 60.0
IDLE_SAMPLE_S = 2.0
MAX_BLOCKS = 10
BLOCK_MIN = 500  # messages per alternating block, at least

T = TypeVar("T")


def Dist(name: str, keep_samples: bool = False) -> Latency:  # noqa: N802 - reads as the type it builds
    """A round-trip distribution reported in us; kept samples are the values the histogram holds."""
    return Latency(name, unit="us", keep_samples=keep_samples, clamp_samples=True)


@dataclass
class Results:
    direct: Latency = field(default_factory=lambda: Dist("direct", keep_samples=True))
    relay: Latency = field(default_factory=lambda: Dist("relay", keep_samples=True))
    # The floor: the same client through a bare gRPC relay (failover/bench/relay/bare_grpc.py).
    bare_grpc: Latency = field(default_factory=lambda: Dist("bare_grpc", keep_samples=True))
    # With --compare-metrics: through the second sidecar, the one with /metrics.
    relay_metrics: Latency = field(default_factory=lambda: Dist("relay_metrics", keep_samples=True))
    # The relay round trip split by the sidecar's own stage timings (Outcome.stages, us):
    # queue = the strategy message arrived in the order path -> written to the venue session;
    # venue = written -> the venue's reply handled; outside = the rest (both gRPC hops, the
    # client library, the sidecar's Relay stream handler, the event loops' scheduling).
    relay_queue: Latency = field(default_factory=lambda: Dist("relay-queue"))
    relay_venue: Latency = field(default_factory=lambda: Dist("relay-venue"))
    relay_outside: Latency = field(default_factory=lambda: Dist("relay-outside"))
    blocks: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=dict)
    idle_metrics: dict[str, float] = field(default_factory=dict)
    scraped: dict[str, Any] = field(default_factory=dict)
    latency_cpu: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    relay_paths: dict[str, int] = field(default_factory=dict)


async def _counters_and_flips(sc: Sidecar) -> tuple[dict[str, int], list[dict[str, str]]]:
    st = await sc.status()
    counters = {k: int(v) for k, v in st.counters.items()}
    flips = [{"from": f.from_path, "to": f.to_path, "trigger": f.trigger, "cause": f.cause} for f in st.flips]
    return counters, flips


class Bench:
    def __init__(
        self,
        rig: Rig,
        res: Results,
        wd: Watchdog,
        *,
        messages: int,
        warmup: int,
        inflight: list[int],
        throughput_messages: int,
        compare_metrics: bool = False,
    ) -> None:
        self.rig = rig
        self.res = res
        self.wd = wd
        self.messages = messages
        self.warmup = warmup
        self.inflight = inflight
        self.throughput_messages = throughput_messages
        self.direct: DirectClient | None = None
        self.sc: Sidecar | None = None
        self.scm: Sidecar | None = None  # the sidecar with metrics (--compare-metrics)
        self.compare_metrics = compare_metrics
        self.kinds: tuple[str, ...] = ("direct", "relay", "bare_grpc") + (
            ("relay_metrics",) if compare_metrics else ()
        )
        self.bare: Sidecar | None = None  # the client of the bare gRPC relay
        self.bare_child: Child | None = None
        self.bare_sent = 0
        self.relay_sent = 0
        self.relay_metrics_sent = 0
        self.direct_sent = 0
        self.framed_rows: FramedRows | None = None  # set by the command unless --no-framed

    # ---------------------------------------------------------------- submitters

    def submit_direct(self) -> asyncio.Future[vp.Message]:
        assert self.direct is not None
        self.direct_sent += 1
        return self.direct.submit()

    def submit_relay(self) -> asyncio.Future[Any]:
        assert self.sc is not None
        self.relay_sent += 1
        return self.sc.submit(GROUP, PAYLOAD)[1]

    def submit_relay_metrics(self) -> asyncio.Future[Any]:
        assert self.scm is not None
        self.relay_metrics_sent += 1
        return self.scm.submit(GROUP, PAYLOAD)[1]

    def submit_bare(self) -> asyncio.Future[Any]:
        assert self.bare is not None
        self.bare_sent += 1
        return self.bare.submit(GROUP, PAYLOAD)[1]

    def submitter(self, kind: str) -> tuple[Callable[[], asyncio.Future[Any]], Callable[[Any], None]]:
        if kind == "direct":
            return self.submit_direct, check_direct
        if kind == "relay":
            return self.submit_relay, self.check_relay
        if kind == "bare_grpc":
            return self.submit_bare, acked_check("bare gRPC relay")
        return self.submit_relay_metrics, self.check_relay

    def sidecar_pid(self, kind: str) -> int:
        """The relay process a kind goes through (direct: the plain sidecar, idle meanwhile)."""
        m = self.rig.metrics_sidecar
        if kind == "bare_grpc" and self.bare_child is not None:
            return self.bare_child.pid
        return m.pid if kind == "relay_metrics" and m is not None else self.rig.sidecar.pid

    def check_relay(self, o: Any) -> None:
        from failover_client.api import OutcomeKind

        if o.kind != OutcomeKind.ACKED:
            raise BenchFailure(
                f"relay: message {o.client_msg_id} got {OutcomeKind.name(o.kind)} "
                f"(path {o.path or '-'}): {o.reason}"
            )
        self.res.relay_paths[o.path] = self.res.relay_paths.get(o.path, 0) + 1

    # ---------------------------------------------------------------- loops

    async def one_at_a_time(
        self,
        submit: Callable[[], asyncio.Future[T]],
        check: Callable[[T], None],
        n: int,
        dist: Latency | None,
        observe: Callable[[T, int], None] | None = None,
    ) -> None:
        """``n`` round trips, one message outstanding; each recorded in ``dist`` (when given)."""
        wd = self.wd
        for _ in range(n):
            t0 = time.monotonic_ns()
            result = await submit()
            t1 = time.monotonic_ns()
            check(result)
            if dist is not None:
                dist.record_ns(t1 - t0)
            if observe is not None:
                observe(result, t1 - t0)
            wd.progress += 1

    def observe_stages(self, o: Any, rtt_ns: int) -> None:
        """Split one relay round trip with the sidecar's own stage timings."""
        st = {s.stage: int(s.duration_us) for s in o.stages}
        if "queue" in st and "venue" in st:
            self.res.relay_queue.record_ns(st["queue"] * 1000)
            self.res.relay_venue.record_ns(st["venue"] * 1000)
            self.res.relay_outside.record_ns(rtt_ns - (st["queue"] + st["venue"]) * 1000)

    async def windowed(
        self,
        submit: Callable[[], asyncio.Future[T]],
        check: Callable[[T], None],
        total: int,
        window: int,
        dist: Latency | None,
    ) -> None:
        """``total`` messages with ``window`` outstanding: each outcome sends the next one."""
        if total <= 0:
            return
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        sent = done = 0
        wd = self.wd

        def launch() -> None:
            nonlocal sent
            sent += 1
            t0 = time.monotonic_ns()
            submit().add_done_callback(lambda f: on_done(f, t0))

        def on_done(f: asyncio.Future[T], t0: int) -> None:
            nonlocal done
            t1 = time.monotonic_ns()
            if finished.done():
                return
            try:
                check(f.result())
            except BaseException as exc:
                finished.set_exception(exc)
                return
            if dist is not None:
                dist.record_ns(t1 - t0)
            done += 1
            wd.progress += 1
            if sent < total:
                try:
                    launch()
                except BaseException as exc:
                    finished.set_exception(exc)
            elif done == total:
                finished.set_result(None)

        for _ in range(min(window, total)):
            launch()
        await finished

    # ---------------------------------------------------------------- phases

    async def setup(self) -> None:
        from failover_client.api import Sidecar

        from failover.v1 import types_pb2 as pb

        rig, wd = self.rig, self.wd
        wd.phase = "starting the venue"
        rig.start_venue()
        await rig.venue_ready(min(READY_TIMEOUT_S, wd.left()))
        wd.phase = "starting the sidecar"
        rig.start_sidecar()
        self.sc = await Sidecar.connect(rig.socket, STRATEGY)
        clients = [self.sc]
        if rig.metrics_sidecar is not None:
            self.scm = await Sidecar.connect(rig.metrics_socket, STRATEGY)
            clients.append(self.scm)

        for sc in clients:

            async def routed_on_primary(sc: Sidecar = sc) -> bool:
                st = await sc.status()
                r = next((r for r in st.routes if r.group == GROUP), None)
                if r is None or r.effective_path != "primary":
                    return False
                return sum(1 for h in r.health if h.state == pb.PATH_STATE_UP) == len(PATHS)

            await bounded(
                "the sidecar's GetStatus shows the route on primary with both paths up",
                min(READY_TIMEOUT_S, wd.left()),
                routed_on_primary,
                rig,
            )
        progress("sidecar ready: route on primary (seeded decision), primary and backup logged on")
        wd.phase = "starting the bare gRPC relay"
        bare_socket = str(rig.sock_dir / "bare-grpc.sock")
        self.bare_child = bare_relay(
            "grpc", bare_socket, rig.gateways["primary"], rig.workdir / "bare-grpc.log"
        )
        await start_ready(self.bare_child, min(READY_TIMEOUT_S, wd.left()))
        self.bare = await Sidecar.connect(bare_socket, STRATEGY)
        progress(f"bare gRPC relay started (pid {self.bare_child.pid}) on unix:{bare_socket}")
        self.direct = await DirectClient.connect(rig.gateways["primary"], DIRECT_SENDER, "direct-")
        # The sidecar at rest: heartbeats on both paths, the coordinator link retrying an unused port.
        pids = {"sidecar": rig.sidecar.pid}
        if rig.metrics_sidecar is not None:
            pids["sidecar_metrics"] = rig.metrics_sidecar.pid
        w = CpuWindow(pids)
        await asyncio.sleep(IDLE_SAMPLE_S)
        idle = w.finish()
        self.res.idle = {
            "wall_s": idle["wall_s"],
            "sidecar_cpu_s": idle["sidecar"],
            "sidecar_cores": round(idle["sidecar"] / idle["wall_s"], 4),
        }
        if "sidecar_metrics" in idle:
            self.res.idle_metrics = {
                "wall_s": idle["wall_s"],
                "sidecar_cpu_s": idle["sidecar_metrics"],
                "sidecar_cores": round(idle["sidecar_metrics"] / idle["wall_s"], 4),
            }
        progress(f"sidecar at rest uses {self.res.idle['sidecar_cores'] * 100:.1f}% of a core")

    async def latency(self) -> None:
        """Round trips, one outstanding, each kind in turn in blocks (the order rotates per block)."""
        wd, res = self.wd, self.res
        wd.measuring = True
        wd.phase = "warm-up"
        progress(f"warm-up: {self.warmup} of each of {', '.join(self.kinds)} (not recorded)")
        for kind in self.kinds:
            await self.one_at_a_time(*self.submitter(kind), self.warmup, None)
        blocks = max(1, min(MAX_BLOCKS, self.messages // BLOCK_MIN))
        if self.compare_metrics:
            blocks = max(blocks, len(self.kinds))  # every kind goes first once
        base, extra = divmod(self.messages, blocks)
        pids = {"sidecar": self.rig.sidecar.pid, "venue": self.rig.venue.pid, "strategy": os.getpid()}
        if self.rig.metrics_sidecar is not None:
            pids["sidecar_metrics"] = self.rig.metrics_sidecar.pid
        cpu = CpuWindow(pids)
        dists = {
            "direct": res.direct,
            "relay": res.relay,
            "bare_grpc": res.bare_grpc,
            "relay_metrics": res.relay_metrics,
        }
        k = len(self.kinds)
        for b in range(blocks):
            n = base + (1 if b < extra else 0)
            order = self.kinds[b % k :] + self.kinds[: b % k]
            if (b // k) % 2:
                order = order[::-1]
            row: dict[str, Any] = {"block": b + 1, "messages": n, "order": list(order)}
            for kind in order:
                wd.phase = f"round trips, block {b + 1}/{blocks}, {kind}"
                d = Dist(kind, keep_samples=True)
                submit, check = self.submitter(kind)
                await self.one_at_a_time(
                    submit, check, n, d, self.observe_stages if kind == "relay" else None
                )
                dists[kind].merge(d)
                row[kind] = {
                    "p50_us": d.percentile_us(50),
                    "p99_us": d.percentile_us(99),
                    "mean_us": d.summary()["mean_us"],
                }
            res.blocks.append(row)
            progress(
                f"block {b + 1}/{blocks}: {n} each; p50 "
                + ", ".join(f"{kind} {fmt_us(row[kind]['p50_us'])} us" for kind in self.kinds)
            )
        res.latency_cpu = cpu.finish()
        wd.measuring = False

    async def throughput(self) -> None:
        wd = self.wd
        for window in self.inflight:
            for kind in self.kinds:
                pids = {
                    "sidecar": self.sidecar_pid(kind),
                    "venue": self.rig.venue.pid,
                    "strategy": os.getpid(),
                }
                idle = {"relay_metrics": self.res.idle_metrics, "bare_grpc": {}}.get(kind, self.res.idle)
                idle_cores = idle.get("sidecar_cores", 0.0)
                submit, check = self.submitter(kind)
                wd.measuring = True
                wd.phase = f"throughput, {kind}, {window} in flight (warm-up)"
                await self.windowed(submit, check, min(self.warmup, self.throughput_messages), window, None)
                wd.phase = f"throughput, {kind}, {window} in flight"
                d = Dist(f"{kind}-{window}")
                cpu = CpuWindow(pids)
                t0 = time.monotonic()
                await self.windowed(submit, check, self.throughput_messages, window, d)
                wall = time.monotonic() - t0
                used = cpu.finish()
                wd.measuring = False
                sc_cpu = used["sidecar"]
                busy_sc = sc_cpu - idle_cores * used["wall_s"]
                row: dict[str, Any] = {
                    "path": kind,
                    "inflight": window,
                    "messages": self.throughput_messages,
                    "wall_s": round(wall, 3),
                    "msgs_per_s": round(self.throughput_messages / wall, 1),
                    "round_trip": d.summary(),
                    "cpu_s": used,
                    "sidecar_cores": round(sc_cpu / used["wall_s"], 3),
                    # Messages per sidecar CPU-second: what one sidecar relays per second on one core.
                    "sidecar_msgs_per_cpu_s": round(self.throughput_messages / sc_cpu, 1)
                    if sc_cpu > 0
                    else None,
                    # The same, less the sidecar's CPU at rest (heartbeats, coordinator retries).
                    "sidecar_msgs_per_cpu_s_less_idle": (
                        round(self.throughput_messages / busy_sc, 1) if busy_sc > 0 else None
                    ),
                    # Per CPU-second of the sidecar's event-loop thread alone (its gRPC threads can
                    # run on another core): the ceiling of one sidecar when its loop is the bottleneck.
                    "sidecar_msgs_per_main_thread_cpu_s": (
                        round(self.throughput_messages / used["sidecar_main_thread"], 1)
                        if used["sidecar_main_thread"] > 0
                        else None
                    ),
                }
                self.res.throughput.append(row)
                per_core = row["sidecar_msgs_per_cpu_s"] if kind != "direct" else None
                progress(
                    f"throughput {kind}, {window} in flight: {row['msgs_per_s']:,.0f} msg/s; "
                    f"sidecar {sc_cpu:.2f} CPU-s in {wall:.2f}s"
                    + (f" ({per_core:,.0f} msg per sidecar CPU-s)" if per_core else "")
                )
                await asyncio.sleep(0.2)

    async def final_checks(self) -> None:
        """Every message got exactly one answer: the sidecars' and the venue's own counters agree."""
        from failover.v1 import venue_pb2, venue_pb2_grpc

        assert self.sc is not None
        counters, flips = await _counters_and_flips(self.sc)
        async with grpc.aio.insecure_channel(self.rig.venue_control) as ch:
            vc = await venue_pb2_grpc.VenueControlStub(ch).GetCounters(venue_pb2.CountersRequest(), timeout=5)
        venue = {
            "orders": int(vc.orders),
            "duplicates": int(vc.duplicates),
            "by_gateway": {g.name: int(g.orders) for g in vc.gateways},
        }
        assert self.direct is not None
        self.res.checks = {
            "direct_sent": self.direct_sent,
            "relay_sent": self.relay_sent,
            "bare_grpc_sent": self.bare_sent,
            "sidecar_counters": counters,
            "sidecar_flips": flips,
            "venue": venue,
            "direct_seq_gaps": self.direct.seq_gaps,
            "relay_outcome_paths": dict(self.res.relay_paths),
        }
        problems = []
        if counters.get("acked", 0) != self.relay_sent:
            problems.append(f"sidecar counted {counters.get('acked', 0)} acked of {self.relay_sent} relayed")
        if self.scm is not None:
            m_counters, m_flips = await _counters_and_flips(self.scm)
            self.res.checks.update(
                relay_metrics_sent=self.relay_metrics_sent,
                metrics_sidecar_counters=m_counters,
                metrics_sidecar_flips=m_flips,
            )
            flips = flips + m_flips
            if m_counters.get("acked", 0) != self.relay_metrics_sent:
                problems.append(
                    f"sidecar with metrics counted {m_counters.get('acked', 0)} acked "
                    f"of {self.relay_metrics_sent} relayed"
                )
            scraped = await asyncio.to_thread(scrape, self.rig.metrics_port)
            acked = sum(
                v for k, v in scraped.items() if k.startswith("failover_orders") and "outcome=acked" in k
            )
            self.res.scraped = {"samples": len(scraped), "orders_acked": acked}
            if acked != self.relay_metrics_sent:
                problems.append(f"/metrics of the sidecar with metrics counted {acked:.0f} acked orders")
        sent = self.direct_sent + self.relay_sent + self.relay_metrics_sent + self.bare_sent
        if venue["orders"] != sent:
            problems.append(f"venue booked {venue['orders']} orders, {sent} sent")
        if venue["duplicates"]:
            problems.append(f"venue saw {venue['duplicates']} duplicate clordids")
        if flips:
            problems.append(f"the sidecar flipped {len(flips)} time(s) during the run: {flips}")
        self.res.checks["problems"] = problems
        if problems:
            raise BenchFailure("; ".join(problems))

    async def close(self) -> None:
        if self.direct is not None:
            await self.direct.logout()
        for sc in (self.sc, self.scm, self.bare):
            if sc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sc.close(), 5)
        if self.bare_child is not None:
            self.bare_child.stop(timeout=5)

    async def run(self) -> None:
        try:
            await self.setup()
            await self.latency()
            if self.throughput_messages > 0:
                await self.throughput()
            self.wd.phase = "final checks"
            await self.final_checks()
            if self.framed_rows is not None:
                await self.framed_rows.run()
        finally:
            await self.close()
