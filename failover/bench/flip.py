"""Local failover and decision fan-out, measured: ``flip`` and ``apply-latency``.

``flip``: in ONE process, so one monotonic clock times every stage: an in-process
venue simulator (``Venue``: gateways primary and backup on 127.0.0.1) and an
in-process sidecar ``Agent`` with its ``OrderPath``, given the group definition
and a decision directly (``on_definition`` / ``on_decision``; no coordinator).
A strategy submits an order every ~1 ms through ``OrderPath.submit``. Each run
injects a fault on the primary gateway with ``await venue.inject_fault(...)``
(``reset``: hard, connections closed and the listener gone; ``stall``: silent,
sockets open, nothing read or written) and records, from the instant just
before that call:

- flip: until the agent's effective route for the group becomes backup
  (``Agent.route_listeners``);
- first ack: until the strategy's sink receives the first ACKED outcome with
  path backup (includes waiting for the strategy's next order, up to ~1 ms).

Then the fault is recovered, two newer decisions move the route back to primary
at once (``[backup, primary]`` then ``[primary, backup]``: a decision that
changes the order skips the failback hold-down), and the next run starts once
both paths are logged on again.

``apply-latency``: real processes. A 1-member etcd, 3 coordinator processes, a
venue process and N sidecar processes (spread over the 3 replicas). Each run
commits an operator switch (Admin/Switch to the leader; the group is paused so
no automatic decision interleaves) and measures from the moment the bench's own
etcd watch (``EtcdStore.watch`` on the routes, run in a child process so the
pollers' load cannot delay it; same CLOCK_MONOTONIC) sees the new route revision
to the moment the LAST sidecar's GetStatus (polled over its unix socket, one
poller per sidecar, ~2 ms between polls) shows the new epoch in its route. The
poll reply's arrival is an upper bound of the apply; the send time of the poll
before it a lower bound: the gap is the resolution, reported with the results,
as is a cross-check without it (the time each sidecar logged applying the
decision). The coordinators probe freshness once a minute instead of every
250 ms: see ``System.start`` for the product bug this works around.

Runnable alone: ``python -m failover.bench.flip flip --runs 50`` and
``python -m failover.bench.flip apply-latency --runs 20``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import grpc
import typer
import yaml
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from failover.bench.common import BenchFailure as BenchError
from failover.bench.common import progress
from failover.etcdproc import EtcdCluster

if TYPE_CHECKING:  # the heavy modules are imported when a command runs, not when the CLI starts
    from failover_sidecar.agent import Agent
    from failover_sidecar.orders import OrderPath

    from failover.v1 import sidecar_pb2 as spb
    from failover.venue.server import Venue

GROUP = "cme-orders"
PATHS = ("primary", "backup")
STRATEGY = "bench"
HIST_MAX_US = 600_000_000  # 10 min
HIST_DIGITS = 3
RUN_TIMEOUT_S = 10.0
POLL_MS = 2.0
FRESHNESS_PROBE_MS = 60_000  # see System.start
ORDER_INTERVAL_S = 0.001

out = Console(highlight=False)


# --------------------------------------------------------------------------- numbers


@dataclass
class Dist:
    """One latency distribution in microseconds: HdrHistogram plus the raw samples."""

    name: str
    hist: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIST_MAX_US, HIST_DIGITS))
    samples_us: list[int] = field(default_factory=list)
    clamped: int = 0  # samples below 1 us (e.g. seen before the reference): recorded as 1 us

    def record_ns(self, ns: int) -> None:
        us = round(ns / 1000)
        self.samples_us.append(us)
        if us < 1:
            self.clamped += 1
            us = 1
        self.hist.record_value(min(us, HIST_MAX_US))

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def ms(self, pct: float | None) -> float | None:
        if not self.count:
            return None
        v = self.hist.get_max_value() if pct is None else self.hist.get_value_at_percentile(pct)
        return float(v) / 1000

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_ms": self.ms(50),
            "p99_ms": self.ms(99),
            "max_ms": self.ms(None),
            "min_ms": float(self.hist.get_min_value()) / 1000 if self.count else None,
            "clamped_to_1us": self.clamped,
            "samples_us": self.samples_us,
        }


def _wide() -> None:
    if not out.is_terminal:
        out.width = 180  # piped: do not squeeze the tables into 80 columns


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _command_line() -> str:
    """The command as typed (``python -m failover.bench.flip`` when run as a module)."""
    argv = list(sys.argv)
    if argv[0].endswith(os.path.join("bench", "flip.py")):
        return shlex.join([sys.executable, "-m", "failover.bench.flip", *argv[1:]])
    if os.path.basename(argv[0]) == "failover":
        return shlex.join(["failover", *argv[1:]])
    return shlex.join(argv)


def _header(title: str, params: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    m = _machine()
    cmd = _command_line()
    out.rule(title)
    out.print(f"command:  {cmd}")
    out.print(f"started:  {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    out.print(
        f"machine:  {m['cpus_usable']} usable cores ({m['cpu_model']}), Linux {m['kernel']}, "
        f"load average {m['load_average_at_start']} (other processes share these cores)"
    )
    out.print(f"software: Python {m['python']}, grpcio {m['grpcio']}")
    out.print("params:   " + ", ".join(f"{k}={v}" for k, v in params.items()))
    for n in notes:
        out.print(f"note:     {n}")
    return {"command": cmd, "machine": m, "params": params, "notes": notes}


def _write_json(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(doc, indent=2) + "\n")
        progress(f"raw results written to {path}")


# =========================================================================== flip


@dataclass
class FlipResult:
    kind: str  # "hard" (reset) or "silent" (stall)
    heartbeat_ms: int
    flip: Dist
    first_ack: Dist
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind}, heartbeat {self.heartbeat_ms} ms"


class FlipRig:
    """A venue and a sidecar agent with its order path, in this process, on this event loop."""

    def __init__(self, heartbeat_ms: int, venue: Venue, agent: Agent, orders: OrderPath) -> None:
        self.heartbeat_ms = heartbeat_ms
        self.venue = venue
        self.agent = agent
        self.orders = orders
        self._expiry: asyncio.Task[None] | None = None
        self._epoch = 0
        self._ids = itertools.count(1)
        self._rng = random.Random(heartbeat_ms)
        # per run
        self.armed_ns = 0
        self.flip_ns = 0
        self.ack_ns = 0
        self.sent_after_flip_ns = 0  # the strategy's first order after the flip
        self.done = asyncio.Event()
        self.acked_primary = 0
        self.outcomes: dict[int, int] = {}  # OutcomeKind -> count
        self.changed = asyncio.Event()
        from failover.v1 import sidecar_pb2

        self._spb = sidecar_pb2  # imported once, off the timed path

    @classmethod
    async def create(cls, heartbeat_ms: int, workdir: Path) -> FlipRig:
        from failover_sidecar.agent import Agent
        from failover_sidecar.config import DataPlaneSection, SidecarConfig
        from failover_sidecar.orders import OrderPath

        from failover.model.convert import group_pb
        from failover.model.spec import GroupSpec, PathSpec
        from failover.venue.config import GatewayConfig, VenueConfig
        from failover.venue.server import Venue

        venue = Venue(
            VenueConfig(
                name="bench",
                gateways=[GatewayConfig(name=p, listen="127.0.0.1:0") for p in PATHS],
                control_listen="127.0.0.1:0",
            )
        )
        await venue.start()
        gws = venue.gateway_addresses
        spec = GroupSpec(name=GROUP, paths=[PathSpec(name=p, endpoints={"default": gws[p]}) for p in PATHS])
        cfg = SidecarConfig(
            host_id="bench",
            groups=[GROUP],
            # Never dialled: the agent is fed definitions and decisions directly.
            coordinators=["127.0.0.1:9"],
            state_file=str(workdir / f"state-{heartbeat_ms}.json"),
            strategies=[STRATEGY],
            data_plane=DataPlaneSection(
                heartbeat_interval_ms=heartbeat_ms, reconnect_min_ms=10, reconnect_max_ms=100
            ),
        )
        agent = Agent(cfg)
        rig = cls(heartbeat_ms, venue, agent, OrderPath(agent))
        rig.orders.sinks[STRATEGY] = rig._sink
        agent.route_listeners.append(rig._on_route)
        rig._expiry = asyncio.create_task(rig.orders.run(), name="order-expiry")
        await agent.start()
        agent.on_definition(group_pb(spec, 1, "default"))
        rig.decide(["primary", "backup"])
        return rig

    def decide(self, paths: list[str]) -> None:
        from failover.v1 import types_pb2 as pb

        self._epoch += 1
        d = pb.Decision(
            group=GROUP,
            paths=paths,
            epoch=pb.Epoch(era=0, revision=self._epoch),
            reason="bench",
            leader_id="bench",
        )
        self.agent.on_decision(d, [])

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await self.agent.stop()
        await self.venue.stop()

    # ----------------------------------------------------------------- hooks

    @property
    def effective(self) -> str | None:
        r = self.agent.routes.get(GROUP)
        return None if r is None else r.effective

    def _on_route(self, group: str) -> None:
        """Every route change and every path state change of the group comes here."""
        if self.armed_ns and not self.flip_ns and self.effective == "backup":
            self.flip_ns = time.monotonic_ns()
        self.changed.set()

    def _sink(self, ev: spb.RelayEvent) -> None:
        now = time.monotonic_ns()
        o = ev.outcome
        self.outcomes[o.kind] = self.outcomes.get(o.kind, 0) + 1
        if o.kind == self._spb.OUTCOME_KIND_ACKED:
            if o.path == "backup" and self.armed_ns and not self.ack_ns:
                self.ack_ns = now
                self.done.set()
            elif o.path == "primary":
                self.acked_primary += 1
        self.changed.set()

    def submit(self) -> None:
        m = self._spb.RelayMessage(
            group=GROUP,
            client_msg_id=next(self._ids),
            kind=self._spb.MESSAGE_KIND_NEW_ORDER,
            payload=b'{"sym":"ESZ6","side":"buy","qty":1,"px":5000}',
        )
        self.orders.submit(STRATEGY, m)
        if self.flip_ns and not self.sent_after_flip_ns:
            self.sent_after_flip_ns = time.monotonic_ns()

    def both_up(self) -> bool:
        return all((s := self.agent.sessions.get((GROUP, p))) is not None and s.can_send for p in PATHS)

    async def until(self, pred: Callable[[], bool], what: str, timeout: float = RUN_TIMEOUT_S) -> None:
        """Wait, bounded, for ``pred``: re-checked on every route, path state or outcome change."""
        end = time.monotonic() + timeout
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                sessions = ", ".join(
                    f"{p}={s.status.state.value}" for (_, p), s in self.agent.sessions.items()
                )
                raise BenchError(
                    f"heartbeat {self.heartbeat_ms} ms: no {what} within {timeout}s "
                    f"(route {self.effective}, sessions {sessions})"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))

    # ----------------------------------------------------------------- one run

    async def one_run(self, fault: str) -> dict[str, Any]:
        from failover.venue.faults import FaultKind

        kind = FaultKind.RESET if fault == "reset" else FaultKind.STALL
        await self.until(lambda: self.effective == "primary" and self.both_up(), "route on primary, both up")
        self.armed_ns = self.flip_ns = self.ack_ns = self.sent_after_flip_ns = 0
        self.done.clear()
        self.acked_primary = 0
        self.outcomes = {}
        stop = asyncio.Event()

        async def strategy() -> None:
            # One order per ms on average: paced against a deadline, since a bare sleep(0.001)
            # lasts 1.1-1.4 ms here (epoll rounds its timeout up to whole milliseconds).
            due = time.monotonic()
            while not stop.is_set():
                self.submit()
                due += ORDER_INTERVAL_S
                await asyncio.sleep(max(0.0, due - time.monotonic()))

        sender = asyncio.create_task(strategy(), name="strategy")
        try:
            await self.until(lambda: self.acked_primary >= 3, "orders acked on primary before the fault")
            # A random phase within one heartbeat interval: the session's heartbeat ticks start
            # when its line (re)connects, which the previous run's recovery ties to this run's
            # start; without this the fault would always land at the same point of the tick.
            await asyncio.sleep(self._rng.uniform(0, self.heartbeat_ms / 1000))
            flips_before = len(self.agent.flips)
            self.armed_ns = time.monotonic_ns()
            await self.venue.inject_fault("primary", None, kind)
            try:
                async with asyncio.timeout(RUN_TIMEOUT_S):
                    await self.done.wait()
            except TimeoutError:
                raise BenchError(
                    f"{fault}, heartbeat {self.heartbeat_ms} ms: no ack on backup within {RUN_TIMEOUT_S}s "
                    f"(route {self.effective}, outcomes by kind {self.outcomes})"
                ) from None
        finally:
            stop.set()
            await sender
        await self.until(lambda: self.orders.ledger.unresolved() == 0, "outcome for every order")
        local = [f for f in list(self.agent.flips)[flips_before:] if f.trigger == "local"]
        detail: dict[str, Any] = {
            "flip_us": round((self.flip_ns - self.armed_ns) / 1000, 1),
            "first_ack_us": round((self.ack_ns - self.armed_ns) / 1000, 1),
            # first_ack = flip + wait for the strategy's next order + that order's round trip on backup
            "next_order_after_flip_us": round((self.sent_after_flip_ns - self.flip_ns) / 1000, 1),
            "backup_round_trip_us": round((self.ack_ns - self.sent_after_flip_ns) / 1000, 1),
            "outcomes": {self._spb.OutcomeKind.Name(k): v for k, v in sorted(self.outcomes.items())},
        }
        if local:  # the agent's own measurement of the same flip, for comparison
            f = local[0]
            detail["agent"] = {
                "cause": f.cause,
                "detect_us": f.detect_us,
                "flip_us": f.flip_us,
                "first_ack_us": f.first_ack_us,
            }
        # Recover and move back: two newer decisions (an order change skips the hold-down).
        await self.venue.inject_fault("primary", None, FaultKind.RECOVER)
        await self.until(self.both_up, "primary logged on again after recover")
        self.decide(["backup", "primary"])
        self.decide(["primary", "backup"])
        await self.until(lambda: self.effective == "primary", "route back on primary")
        return detail


async def _flip_main(heartbeats: list[int], runs: int, results: list[FlipResult], workdir: Path) -> None:
    for hb in heartbeats:
        rig = await FlipRig.create(hb, workdir)
        try:
            for fault, kind in (("reset", "hard"), ("stall", "silent")):
                res = FlipResult(kind, hb, Dist(f"{kind}/{hb}ms flip"), Dist(f"{kind}/{hb}ms first ack"))
                results.append(res)
                await rig.one_run(fault)  # warm-up, not recorded
                for i in range(runs):
                    d = await rig.one_run(fault)
                    res.flip.record_ns(rig.flip_ns - rig.armed_ns)
                    res.first_ack.record_ns(rig.ack_ns - rig.armed_ns)
                    res.runs.append({"run": i + 1, **d})
                progress(
                    f"{res.label}: {runs} runs, flip p50 {fmt(res.flip.ms(50))} ms, "
                    f"first ack p50 {fmt(res.first_ack.ms(50))} ms"
                )
        finally:
            await rig.stop()


def flip(
    heartbeat_ms: Annotated[
        list[int], typer.Option("--heartbeat-ms", min=1, max=10_000, help="Heartbeat intervals (repeatable).")
    ] = [5, 50],  # noqa: B006 - typer's default; never mutated
    runs: Annotated[
        int, typer.Option("--runs", min=1, max=10_000, help="Runs per fault kind and interval.")
    ] = 50,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every sample (us) to this file.")
    ] = None,
) -> None:
    """Local failover in one process: fault injected -> effective route on backup -> first ack there."""
    import logging

    logging.getLogger("failover_sidecar").setLevel(logging.ERROR)  # one warning per flip otherwise
    logging.getLogger("failover.venue").setLevel(logging.ERROR)
    _wide()
    params = {"heartbeat_ms": heartbeat_ms, "runs": runs}
    doc = _header(
        "failover bench flip",
        params,
        [
            "one process, one monotonic clock: in-process venue (2 gateways on 127.0.0.1) and sidecar "
            "Agent + OrderPath on the same event loop, no coordinator",
            "hard = gateway reset (connections closed, listener gone); silent = gateway stall (sockets open, "
            "nothing read or written); silence limit = 3 heartbeat intervals",
            "strategy sends an order every ~1 ms (paced on a deadline); first ack = flip + wait for the "
            "strategy's next order + its round trip on backup (both parts per run in the JSON)",
            "asyncio timers fire on a ~1 ms grid (epoll timeouts are whole ms), so after a hard fault the "
            "strategy's next order tends to come ~1.2 ms later, not uniformly within 1 ms",
            "each fault lands at a random phase (uniform) of the heartbeat interval",
            "reconnect backoff 10..100 ms (bench setting, not measured); "
            "one warm-up run per row, not recorded",
        ],
    )
    doc["benchmark"] = "flip"
    results: list[FlipResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="failover-bench-flip-"))
    code = 0
    try:
        asyncio.run(_flip_main(heartbeat_ms, runs, results, workdir))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except BenchError as exc:
        code, doc["error"] = 1, str(exc)
    except (OSError, RuntimeError) as exc:  # unexpected: one line, no traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    t = Table(title="local failover: from fault injection (ms)", title_justify="left")
    for col in (
        "failure",
        "heartbeat",
        "runs",
        "flip p50",
        "flip p99",
        "flip max",
        "ack p50",
        "ack p99",
        "ack max",
    ):
        t.add_column(col, justify="left" if col == "failure" else "right")
    for r in results:
        t.add_row(
            r.kind,
            f"{r.heartbeat_ms} ms",
            str(r.flip.count),
            fmt(r.flip.ms(50)),
            fmt(r.flip.ms(99)),
            fmt(r.flip.ms(None)),
            fmt(r.first_ack.ms(50)),
            fmt(r.first_ack.ms(99)),
            fmt(r.first_ack.ms(None)),
        )
    out.print(t)
    out.print(
        "flip = fault injected -> agent's effective route is backup; "
        "ack = fault injected -> first order ACKED on backup reaches the strategy's sink"
    )
    for r in results:
        wait = sorted(x["next_order_after_flip_us"] for x in r.runs)
        rtt = sorted(x["backup_round_trip_us"] for x in r.runs)
        if wait:
            w50, r50 = wait[len(wait) // 2] / 1000, rtt[len(rtt) // 2] / 1000
            out.print(
                f"  {r.label}: ack - flip = next order after the flip (p50 {w50:.2f} ms) "
                f"+ its round trip on backup (p50 {r50:.2f} ms)"
            )
    doc["results"] = {
        f"{r.kind}/{r.heartbeat_ms}ms": {
            "kind": r.kind,
            "fault": "reset" if r.kind == "hard" else "stall",
            "heartbeat_ms": r.heartbeat_ms,
            "flip": r.flip.summary(),
            "first_ack": r.first_ack.summary(),
            "runs": r.runs,
        }
        for r in results
    }
    doc["ok"] = code == 0
    _write_json(json_out, doc)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
        raise typer.Exit(code)


# =========================================================================== apply-latency


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports, all bound at once then released (one at a time may repeat)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _child_env() -> dict[str, str]:
    # FAILOVER_* variables would override the config files: each process is defined by its file.
    return {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}


@dataclass
class Child:
    """A ``python -m failover.cli ...`` child in its own session, stopped by its pid."""

    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "failover.cli", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


class System:
    """etcd (1 member), 3 coordinators, a venue, N sidecars: all children of this process."""

    def __init__(self, sidecars: int, workdir: Path, replicas: int = 3) -> None:
        self.n = sidecars
        self.workdir = workdir
        self.prefix = f"/bench-apply-{uuid.uuid4().hex[:10]}/"
        self.etcd: EtcdCluster | None = None
        self.children: list[Child] = []
        ports = _free_ports(replicas + len(PATHS) + 1)
        self.coordinators = {f"c{i + 1}": f"127.0.0.1:{ports.pop()}" for i in range(replicas)}
        self.gateways = {p: f"127.0.0.1:{ports.pop()}" for p in PATHS}
        self.venue_control = f"127.0.0.1:{ports.pop()}"
        self.sockets: dict[str, str] = {}
        self.replica_of: dict[str, str] = {}
        self.sock_dir = Path(tempfile.mkdtemp(prefix="fo-bench-", dir="/tmp"))  # short: unix path limit

    def _spawn(self, name: str, args: list[str]) -> Child:
        c = Child(name, args, self.workdir / f"{name}.log")
        c.start()
        self.children.append(c)
        return c

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        p = self.workdir / name
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return p

    def start(self) -> None:
        progress("starting etcd (1 member, tmpfs data)")
        etcd = self.etcd = EtcdCluster(1)
        etcd.start()
        venue_args = ["venue", "run", "--name", "bench", "--control", self.venue_control]
        for p, a in self.gateways.items():
            venue_args += ["--gateway", f"{p}={a}"]
        self._spawn("venue", venue_args)
        group = {
            "name": GROUP,
            "paths": [{"name": p, "endpoints": {"default": a}} for p, a in self.gateways.items()],
        }
        for rid, addr in self.coordinators.items():
            cfg = self._write(
                f"{rid}.yaml",
                {
                    "replica_id": rid,
                    "listen": addr,
                    "etcd": {"endpoints": etcd.endpoints, "prefix": self.prefix},
                    "groups": [group],
                    # Workaround: a freshness probe's progress request can be answered by etcd 3.4
                    # with a revision below an event already delivered (etcd#15220), which the
                    # coordinator's Mirror takes for an etcd restore: it then refuses every commit
                    # until `failover era bump`. Probing once a minute keeps that out of the runs.
                    "freshness": {"probe_interval_ms": FRESHNESS_PROBE_MS},
                },
            )
            self._spawn(rid, ["coordinator", "--config", str(cfg)])
        progress(f"started a venue and {len(self.coordinators)} coordinators; logs in {self.workdir}")

    def start_sidecars(self) -> None:
        addrs = list(self.coordinators.values())
        for i in range(self.n):
            host = f"h{i + 1:02d}"
            sock = str(self.sock_dir / f"{host}.sock")
            self.sockets[host] = sock
            k = i % len(addrs)
            self.replica_of[host] = addrs[k]
            cfg = self._write(
                f"{host}.yaml",
                {
                    "host_id": host,
                    "groups": [GROUP],
                    "coordinators": addrs[k:] + addrs[:k],  # spread the streams over the replicas
                    "state_file": str(self.workdir / f"{host}.state.json"),
                    "strategies": ["s1"],
                    "listen": {"socket": sock},
                },
            )
            self._spawn(host, ["sidecar", "--config", str(cfg)])
        progress(f"started {self.n} sidecars")

    def check_alive(self) -> None:
        for c in self.children:
            if not c.alive:
                code = c.proc.returncode if c.proc is not None else None
                raise BenchError(f"{c.name} exited (code {code}); its log ends:\n{c.tail()}")

    def stop(self, keep_logs: bool) -> None:
        for c in reversed(self.children):  # sidecars first: they log out of the venue
            c.terminate()
        for c in reversed(self.children):
            c.reap()
        if self.etcd is not None:
            self.etcd.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if keep_logs:
            progress(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def watch_child() -> None:
    """Entry of the watcher process: ``python -c ... ENDPOINTS PREFIX``.

    Prints ``ready REVISION`` once it knows where to start, then ``REVISION MONOTONIC_NS WALL_NS``
    for every PUT under ``<prefix>routes/``, stamped when the watch response arrives here.
    """
    endpoints, prefix = sys.argv[1].split(","), sys.argv[2]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch_child(endpoints, prefix))


async def _watch_child(endpoints: list[str], prefix: str) -> None:
    from coordinator.store.etcd_store import EtcdStore
    from coordinator.store.types import EventKind

    store = EtcdStore(endpoints, rpc_timeout_s=2.0)
    try:
        rev = await store.current_revision()
        print(f"ready {rev}", flush=True)
        async with store.watch(prefix + "routes/", rev + 1) as w:
            async for batch in w:
                now, wall = time.monotonic_ns(), time.time_ns()
                for ev in batch.events:
                    if ev.kind is EventKind.PUT:
                        print(f"{ev.kv.mod_revision} {now} {wall}", flush=True)
    finally:
        await store.close()


class RouteWatch:
    """The bench's own etcd watch on ``<prefix>routes/``: when each route revision became visible.

    It runs in a child process of its own: the pollers keep this process's event loop busy
    (with 20 sidecars, a watch response waited here for tens of ms), and a late t0 would
    understate every latency. Both processes read the same CLOCK_MONOTONIC.
    """

    def __init__(self, endpoints: list[str], prefix: str, log_path: Path) -> None:
        self.endpoints = endpoints
        self.prefix = prefix
        self.log_path = log_path
        self.seen: dict[int, int] = {}  # revision -> monotonic ns
        self.seen_wall: dict[int, int] = {}  # revision -> wall-clock ns (for the sidecars' log times)
        self.changed = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from failover.bench.flip import watch_child; watch_child()",
                ",".join(self.endpoints),
                self.prefix,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                env=_child_env(),
                start_new_session=True,
            )
        finally:
            os.close(log)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        if not line.startswith(b"ready "):
            raise BenchError(f"the etcd watcher process did not start; see {self.log_path}")
        self.task = asyncio.create_task(self._read(self.proc.stdout), name="bench-route-watch")

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            rev, ns, wall = line.split()
            self.seen.setdefault(int(rev), int(ns))
            self.seen_wall.setdefault(int(rev), int(wall))
            self.changed.set()

    async def wait(self, rev: int, timeout: float) -> int:
        end = time.monotonic() + timeout
        while rev not in self.seen:
            if self.task is not None and self.task.done():
                raise BenchError(f"the etcd watcher process ended; see {self.log_path}")
            left = end - time.monotonic()
            if left <= 0:
                raise BenchError(f"the bench's etcd watch did not see route revision {rev} within {timeout}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return self.seen[rev]

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()  # by pid: our own child
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


@dataclass
class Seen:
    """When one sidecar's GetStatus first showed a revision above the one held before the switch."""

    revision: int
    reply_ns: int  # upper bound of the apply
    prev_sent_ns: int  # send time of the poll before it: lower bound
    polls: int
    poll_gaps_ns: list[int]  # between the starts of successive polls
    poll_rtts_ns: list[int]  # GetStatus sent -> reply


class Poller:
    """GetStatus of every sidecar over its unix socket, one task per sidecar, ``interval_s`` between polls."""

    def __init__(self, sockets: dict[str, str], interval_s: float) -> None:
        from failover import rpc

        self.interval_s = interval_s
        self.channels = {h: rpc.channel(f"unix:{s}") for h, s in sockets.items()}

    async def status(self, host: str, timeout: float = 5.0) -> Any:
        from failover.v1 import sidecar_pb2 as spb
        from failover.v1 import sidecar_pb2_grpc

        stub = sidecar_pb2_grpc.SidecarStub(self.channels[host])
        return await stub.GetStatus(spb.SidecarStatusRequest(), timeout=timeout)

    @staticmethod
    def revision(st: Any) -> int:
        for r in st.routes:
            if r.group == GROUP:
                return int(r.epoch.revision)
        return 0

    async def until_above(self, host: str, held: int, end: float) -> Seen:
        """Poll until the route's revision is above ``held``: a poll every interval (at once if late)."""
        prev_sent = time.monotonic_ns()
        polls = 0
        gaps: list[int] = []
        rtts: list[int] = []
        due = time.monotonic()
        while True:
            sent = time.monotonic_ns()
            if polls:
                gaps.append(sent - prev_sent)
            st = await self.status(host, timeout=2.0)
            reply = time.monotonic_ns()
            rtts.append(reply - sent)
            polls += 1
            rev = self.revision(st)
            if rev > held:
                return Seen(rev, reply, prev_sent, polls, gaps, rtts)
            prev_sent = sent
            if time.monotonic() > end:
                raise BenchError(f"sidecar {host} still holds revision {rev} (<= {held}) after the switch")
            due = max(due + self.interval_s, time.monotonic())
            await asyncio.sleep(due - time.monotonic())

    async def close(self) -> None:
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)


async def _bounded(what: str, timeout: float, probe: Callable[[], Awaitable[bool]], sys_: System) -> None:
    end = time.monotonic() + timeout
    last = ""
    while True:
        sys_.check_alive()
        try:
            if await probe():
                return
        except grpc.aio.AioRpcError as exc:
            last = f"{exc.code().name}: {exc.details()}"
        if time.monotonic() > end:
            raise BenchError(f"{what}: not within {timeout:.0f}s {last}")
        await asyncio.sleep(0.05)


@dataclass
class ApplyResult:
    sidecars: int
    last: Dist = field(default_factory=lambda: Dist("last sidecar"))
    every: Dist = field(default_factory=lambda: Dist("each sidecar"))
    gaps: Dist = field(default_factory=lambda: Dist("poll gap"))
    rtts: Dist = field(default_factory=lambda: Dist("poll round trip"))
    log_last: Dist = field(default_factory=lambda: Dist("last sidecar, by its log"))
    log_every: Dist = field(default_factory=lambda: Dist("each sidecar, by its log"))
    lower_last_us: list[int] = field(default_factory=list)  # signed: may precede the commit
    runs: list[dict[str, Any]] = field(default_factory=list)

    def lower_p50_ms(self) -> float | None:
        v = sorted(self.lower_last_us)
        return v[len(v) // 2] / 1000 if v else None


_LOG_DECISION = re.compile(rf"^(\S+Z) .*\bdecision {re.escape(GROUP)} (\d+):(\d+) -> ")


class LogTimes:
    """When each sidecar logged applying each decision (``Agent.on_decision`` logs it as it applies).

    A cross-check free of the polling resolution: the log line's UTC timestamp (microseconds)
    against the watcher's wall clock, both read from this host's CLOCK_REALTIME.
    """

    def __init__(self, logs: dict[str, Path]) -> None:
        self.logs = logs
        self._offsets = dict.fromkeys(logs, 0)
        self.applied: dict[tuple[str, int], int] = {}  # (host, revision) -> wall ns

    def scan(self) -> None:
        for host, path in self.logs.items():
            with contextlib.suppress(OSError), open(path, "rb") as f:
                f.seek(self._offsets[host])
                data = f.read()
                end = data.rfind(b"\n") + 1  # whole lines only
                self._offsets[host] += end
                for line in data[:end].decode(errors="replace").splitlines():
                    m = _LOG_DECISION.match(line)
                    if m is None:
                        continue
                    t = datetime.datetime.fromisoformat(m[1].replace("Z", "+00:00"))
                    ns = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
                    self.applied.setdefault((host, int(m[3])), ns)


async def _apply_one(n: int, runs: int, res: ApplyResult, workdir: Path, poll_ms: float) -> None:
    from failover import rpc
    from failover.v1 import admin_pb2 as apb
    from failover.v1 import admin_pb2_grpc

    s = System(n, workdir)
    watch: RouteWatch | None = None
    poller: Poller | None = None
    channels: dict[str, grpc.aio.Channel] = {}
    ok = False
    try:
        s.start()

        def admin(addr: str) -> Any:
            if addr not in channels:
                channels[addr] = rpc.channel(addr)
            return admin_pb2_grpc.AdminStub(channels[addr])

        leader = ""

        async def coordinators_ready() -> bool:
            nonlocal leader
            for addr in s.coordinators.values():
                st = await admin(addr).GetStatus(apb.GetStatusRequest(), timeout=2)
                if not st.leader.address or not any(g.HasField("decision") for g in st.groups):
                    return False
                leader = st.leader.address
            return True

        await _bounded("coordinators ready (leader and first decision)", 60, coordinators_ready, s)
        s.start_sidecars()
        poller = Poller(s.sockets, poll_ms / 1000)
        p = poller
        logs = LogTimes({h: workdir / f"{h}.log" for h in s.sockets})

        async def sidecars_ready() -> bool:
            for h in s.sockets:
                st = await p.status(h, timeout=2)
                r = next((r for r in st.routes if r.group == GROUP), None)
                if (
                    not st.control_plane_connected
                    or r is None
                    or not r.epoch.revision
                    or not r.effective_path
                ):
                    return False
                if sum(1 for x in r.health if x.state == 1) < len(PATHS):  # PATH_STATE_UP
                    return False
            return True

        await _bounded(
            f"{n} sidecars ready (streaming, a decision held, both paths up)", 120, sidecars_ready, s
        )
        # No automatic decision may interleave with the measured ones (a line falsely declared
        # silent on a saturated machine would otherwise move the group): pause the group.
        # Operator switches still commit; force skips the "someone reports the path up" guard.
        pause = apb.SetControlRequest(
            action=apb.CONTROL_ACTION_PAUSE, group=GROUP, reason="bench apply-latency", operator="bench"
        )
        await admin(leader).SetControl(pause, timeout=5)
        st = await admin(leader).GetStatus(apb.GetStatusRequest(), timeout=5)
        active = next(str(g.decision.paths[0]) for g in st.groups if g.definition.name == GROUP)
        assert s.etcd is not None
        watch = RouteWatch(s.etcd.endpoints, s.prefix, workdir / "watch.log")
        await watch.start()
        progress(f"[{n} sidecars] ready; leader {leader}; group paused")
        for run in range(-1, runs):  # run -1: warm-up, not recorded
            s.check_alive()
            held = max([p.revision(await p.status(h)) for h in s.sockets])
            target = "backup" if active == "primary" else "primary"
            end = time.monotonic() + RUN_TIMEOUT_S
            pollers = [asyncio.create_task(p.until_above(h, held, end)) for h in s.sockets]
            try:
                req = apb.SwitchRequest(
                    group=GROUP, path=target, reason="bench apply-latency", operator="bench", force=True
                )
                try:
                    resp = await admin(leader).Switch(req, timeout=5)
                except grpc.aio.AioRpcError as exc:
                    why = f"{exc.code().name}: {exc.details()}"
                    raise BenchError(f"run {run + 1}: Switch to {target} via the leader: {why}") from None
                rev = int(resp.decision.epoch.revision)
                if list(resp.decision.paths)[:1] != [target]:
                    raise BenchError(f"Switch to {target} answered {list(resp.decision.paths)}")
                t_commit = await watch.wait(rev, RUN_TIMEOUT_S)
                seen: list[Seen] = await asyncio.gather(*pollers)
            except BaseException:
                for t in pollers:
                    t.cancel()
                await asyncio.gather(*pollers, return_exceptions=True)
                raise
            active = target
            other = [x.revision for x in seen if x.revision != rev]
            if other:
                raise BenchError(f"sidecars saw revision(s) {sorted(set(other))}, not the switch's {rev}")
            last_reply = max(x.reply_ns for x in seen)
            last_lower = max(x.prev_sent_ns for x in seen)
            await asyncio.to_thread(logs.scan)
            logged = [logs.applied.get((h, rev)) for h in s.sockets]
            t_wall = watch.seen_wall[rev]
            by_log = [t - t_wall for t in logged if t is not None] if all(logged) else []
            if run >= 0:
                if by_log:
                    res.log_last.record_ns(max(by_log))
                    for d in by_log:
                        res.log_every.record_ns(d)
                res.last.record_ns(last_reply - t_commit)
                res.lower_last_us.append((last_lower - t_commit) // 1000)
                for x in seen:
                    res.every.record_ns(x.reply_ns - t_commit)
                    for g in x.poll_gaps_ns:
                        res.gaps.record_ns(g)
                    for rt in x.poll_rtts_ns:
                        res.rtts.record_ns(rt)
                res.runs.append(
                    {
                        "run": run + 1,
                        "revision": rev,
                        "last_sidecar_us": (last_reply - t_commit) // 1000,
                        "last_sidecar_lower_bound_us": (last_lower - t_commit) // 1000,
                        "per_sidecar_us": [(x.reply_ns - t_commit) // 1000 for x in seen],
                        "per_sidecar_by_log_us": [d // 1000 for d in by_log],
                        "polls": [x.polls for x in seen],
                    }
                )
                progress(
                    f"[{n} sidecars] run {run + 1}/{runs} rev {rev}: last sidecar applied "
                    f"{(last_reply - t_commit) / 1e6:.2f} ms after commit "
                    f"(lower bound {(last_lower - t_commit) / 1e6:.2f} ms)"
                )
            await asyncio.sleep(0.2)
        ok = True
    finally:
        if poller is not None:
            await poller.close()
        if watch is not None:
            await watch.close()
        for ch in channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)
        s.stop(keep_logs=not ok)


def apply_latency(
    sidecars: Annotated[
        list[int], typer.Option("--sidecars", min=1, max=200, help="Sidecar process counts (repeatable).")
    ] = [3, 20],  # noqa: B006 - typer's default; never mutated
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="Switches per sidecar count.")] = 20,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every sample (us) to this file.")
    ] = None,
    poll_ms: Annotated[
        float,
        typer.Option("--poll-ms", min=0.5, max=1000, help="Interval between a sidecar's GetStatus polls."),
    ] = POLL_MS,
) -> None:
    """Decision committed (seen by our own etcd watch) -> the last of N sidecar processes applied it."""
    _wide()
    params = {"sidecars": sidecars, "runs": runs, "poll_ms": poll_ms}
    doc = _header(
        "failover bench apply-latency",
        params,
        [
            "1 etcd member, 3 coordinator processes, a venue process, N sidecar processes spread over the "
            "replicas; everything on 127.0.0.1",
            "t0 = the bench's own etcd watch on the routes (in a child process, same CLOCK_MONOTONIC) "
            "sees the switch's revision; "
            "t1 = the last sidecar's GetStatus reply showing it (polled over its unix socket, "
            f"~{poll_ms:g} ms between polls, one poller per sidecar)",
            "t1 is an upper bound; the send time of each sidecar's previous poll gives a lower bound; "
            "cross-check free of the polling resolution: the UTC time each sidecar logged applying the "
            "decision vs the watcher's wall clock (same host clock, us resolution)",
            "the polling itself loads the machine (N pollers in this process, N sidecars answering): "
            "with many sidecars on 2 cores it inflates what it measures; "
            "--poll-ms trades resolution for load",
            f"coordinators: defaults except freshness.probe_interval_ms={FRESHNESS_PROBE_MS} (works around "
            "a false 'etcd restore detected' on etcd 3.4's out-of-order progress notifications)",
            "the group is paused (no automatic decision interleaves); each run is an operator switch "
            "(Admin/Switch to the leader, force), paths alternating; "
            "one warm-up switch per row, not recorded",
        ],
    )
    doc["benchmark"] = "apply-latency"
    results: list[ApplyResult] = []
    code = 0
    try:
        for n in sidecars:
            res = ApplyResult(n)
            results.append(res)
            workdir = Path(tempfile.mkdtemp(prefix=f"failover-bench-apply-{n}-"))
            asyncio.run(_apply_one(n, runs, res, workdir, poll_ms))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except BenchError as exc:
        code, doc["error"] = 1, str(exc)
    except (grpc.aio.AioRpcError, OSError, RuntimeError) as exc:  # unexpected: one line, no traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    t = Table(title="decision commit -> sidecar applied (ms)", title_justify="left")
    for col in (
        "sidecars",
        "runs",
        "last p50",
        "last p99",
        "last max",
        "lower-bound p50",
        "each p50",
        "each p99",
        "poll gap p50",
        "poll gap p99",
        "poll rtt p50",
        "log: last p50",
        "log: last p99",
        "log: last max",
    ):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            str(r.sidecars),
            str(r.last.count),
            fmt(r.last.ms(50)),
            fmt(r.last.ms(99)),
            fmt(r.last.ms(None)),
            fmt(r.lower_p50_ms()),
            fmt(r.every.ms(50)),
            fmt(r.every.ms(99)),
            fmt(r.gaps.ms(50)),
            fmt(r.gaps.ms(99)),
            fmt(r.rtts.ms(50)),
            fmt(r.log_last.ms(50)),
            fmt(r.log_last.ms(99)),
            fmt(r.log_last.ms(None)),
        )
    out.print(t)
    out.print(
        "last = per run, commit -> the last sidecar's poll reply showing the new epoch (upper bound); "
        "lower-bound = commit -> that sidecar's previous poll was sent; each = every sidecar of every run; "
        "poll gap = time between the starts of successive polls of one sidecar (the polling resolution "
        f"actually achieved; target {poll_ms:g} ms); poll rtt = one GetStatus round trip; "
        "log = commit -> the last sidecar's log line applying the decision (no polling resolution)"
    )
    doc["results"] = [
        {
            "sidecars": r.sidecars,
            "last_sidecar": r.last.summary(),
            "last_sidecar_lower_bound_us": r.lower_last_us,
            "each_sidecar": r.every.summary(),
            "poll_gap": {k: v for k, v in r.gaps.summary().items() if k != "samples_us"},
            "poll_round_trip": {k: v for k, v in r.rtts.summary().items() if k != "samples_us"},
            "last_sidecar_by_log": r.log_last.summary(),
            "each_sidecar_by_log": r.log_every.summary(),
            "runs": r.runs,
        }
        for r in results
    ]
    doc["ok"] = code == 0
    _write_json(json_out, doc)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
        raise typer.Exit(code)


app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Failover benchmarks: flip and apply-latency."
)
app.command("flip")(flip)
app.command("apply-latency")(apply_latency)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    with _sigterm_as_interrupt():
        try:
            app()
        except KeyboardInterrupt:
            sys.exit(130)
