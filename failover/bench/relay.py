"""Relay overhead: what the sidecar adds to a strategy's round trip, and what one sidecar relays per core.

Three processes on 127.0.0.1, each its own, as in production:

- the venue simulator: ``python -m failover.cli venue run --gateway primary=... --gateway backup=...``;
- one sidecar: ``python -m failover.cli sidecar --config FILE``. No control plane runs: its
  state file is seeded before it starts with the group definition (paths primary and
  backup, both on the venue) and a decision ``[primary, backup]``, and a sidecar with no
  reachable coordinator routes on its stored state (static stability, a documented
  feature). Its ``coordinators`` list names an unused loopback port: the coordinator
  link keeps retrying it in the background, as it would with the control plane down;
- the strategy: this process. ``direct``: a minimal asyncio client of the venue
  protocol (``failover.wire.protocol``) on the primary gateway: logon, then for each
  message a ``new`` with a unique clordid and wait for its ``ack``. ``relay``: the
  strategy library (``failover_client.api.Sidecar``) over the sidecar's unix socket: for each
  message ``submit`` and wait for the outcome ACKED (the sidecar writes it to its warm
  primary session and relays the venue's ack back).

Measured, after the sidecar's GetStatus shows the route on primary with both paths up:

1. round trip, one message outstanding: strategy send -> ``ack`` (direct) and strategy
   send -> outcome ACKED (relay); ``--warmup`` of each first (not recorded), then
   ``--messages`` of each in alternating blocks (direct, relay, relay, direct, ...),
   so drift and other load on the machine hit both alike. Every round trip is recorded
   (microseconds) in an HdrHistogram; the sidecar's cost is relay minus direct;
2. throughput: ``--throughput-messages`` per row with ``--inflight N`` messages
   outstanding (a sliding window: each outcome sends the next message), direct and
   relay, and the CPU seconds each process used meanwhile (``/proc/<pid>/stat``
   utime+stime, all threads): messages / sidecar CPU-seconds is what one sidecar
   relays per second on one core.

Runnable alone: ``python -m failover.bench.relay --messages 100000 --inflight 1,64``.
Progress goes to stderr, the header and tables to stdout, raw figures to ``--json``.
Exit codes: 0 done, 1 a measurement failed (the message says which; logs kept), 130
interrupted. Both children are stopped by their pid on the way out, also on Ctrl-C,
SIGTERM and errors, and every wait is bounded (``--max-seconds`` for the whole run,
``STALL_S`` without progress while measuring).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import grpc
import typer
import yaml
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from failover.bench.common import BenchFailure, progress
from failover.wire import protocol as vp
from failover.wire.address import parse_host_port

if TYPE_CHECKING:  # imported when the run starts, not when the CLI parses its flags
    from failover_client.api import Sidecar

GROUP = "cme-orders"
PATHS = ("primary", "backup")
HOST_ID = "bench-relay"
STRATEGY = "bench"
DIRECT_SENDER = "bench-direct"
PAYLOAD = '{"sym":"ESZ6","side":"buy","qty":1,"px":5000}'
HIST_MAX_US = 60_000_000  # 1 us .. 60 s
HIST_DIGITS = 3
STALL_S = 10.0  # no message completed for this long while measuring: abort
READY_TIMEOUT_S = 60.0
IDLE_SAMPLE_S = 2.0
MAX_BLOCKS = 10
BLOCK_MIN = 500  # messages per alternating block, at least

T = TypeVar("T")

out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)


# --------------------------------------------------------------------------- numbers


@dataclass
class Dist:
    """One round-trip distribution in microseconds (HdrHistogram; raw samples kept when asked)."""

    name: str
    keep_samples: bool = False
    hist: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIST_MAX_US, HIST_DIGITS))
    samples_us: list[int] = field(default_factory=list)
    sum_ns: int = 0

    def merge(self, other: Dist) -> None:
        self.hist.add(other.hist)
        self.sum_ns += other.sum_ns
        if self.keep_samples:
            self.samples_us.extend(other.samples_us)

    def record_ns(self, ns: int) -> None:
        self.sum_ns += ns
        us = min(max(round(ns / 1000), 1), HIST_MAX_US)
        self.hist.record_value(us)
        if self.keep_samples:
            self.samples_us.append(us)

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def pct(self, p: float) -> float | None:
        return float(self.hist.get_value_at_percentile(p)) if self.count else None

    def summary(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0}
        h = self.hist
        return {
            "count": self.count,
            "min_us": float(h.get_min_value()),
            "p50_us": self.pct(50),
            "p90_us": self.pct(90),
            "p99_us": self.pct(99),
            "p99_9_us": self.pct(99.9),
            "max_us": float(h.get_max_value()),
            # The exact mean of the samples (the histogram's would be bucketed).
            "mean_us": round(self.sum_ns / self.count / 1000, 1),
        }

    def to_json(self) -> dict[str, Any]:
        doc = self.summary()
        if self.keep_samples:
            doc["samples_us"] = self.samples_us
        return doc


def fmt_us(v: Any) -> str:
    return "-" if v is None else f"{float(v):,.0f}"


def parse_inflight(value: str | int) -> list[int]:
    """``"1,64"`` -> ``[1, 64]``; each 1..10000 (the sidecar's default ``orders.max_outstanding``)."""
    try:
        items = [int(x) for x in str(value).split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: comma-separated integers expected", param_hint="--inflight"
        ) from None
    if not items or any(not 1 <= x <= 10_000 for x in items):
        raise typer.BadParameter(f"{value!r}: each value must be in 1..10000", param_hint="--inflight")
    return list(dict.fromkeys(items))


# --------------------------------------------------------------------------- CPU accounting


def proc_cpu_s(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads), or of one thread of it, in seconds; 0.0 if gone."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 (state) first
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (every core), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


class CpuWindow:
    """CPU seconds used by the sidecar, the venue, this process and everything else, over a window.

    ``<name>_main_thread``: the process's main thread alone (its asyncio event loop; the rest
    is gRPC's threads and the like).
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.start = {k: proc_cpu_s(p) for k, p in pids.items()}
        self.start_main = {k: proc_cpu_s(p, p) for k, p in pids.items()}
        self.busy0 = machine_busy_s()

    def finish(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        used = {k: proc_cpu_s(p) - self.start[k] for k, p in self.pids.items()}
        main = {k: proc_cpu_s(p, p) - self.start_main[k] for k, p in self.pids.items()}
        busy = machine_busy_s() - self.busy0
        res = {k: round(v, 3) for k, v in used.items()}
        res.update({f"{k}_main_thread": round(v, 3) for k, v in main.items()})
        res["wall_s"] = round(wall, 3)
        res["machine_busy"] = round(busy, 3)
        # Busy time charged to none of ours: other processes, and softirq work (loopback delivery).
        res["other_processes"] = round(max(0.0, busy - sum(used.values())), 3)
        return res


# --------------------------------------------------------------------------- the machine, the command


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpus_online": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "network": "loopback (127.0.0.1 TCP to the venue, a unix socket to the sidecar)",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def command_line(params: dict[str, Any]) -> str:
    """The command as typed (``python -m failover.bench.relay ...``); in-process, an equivalent one."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("bench", "relay.py")):
        return shlex.join([sys.executable, "-m", "failover.bench.relay", *argv[1:]])
    flags: list[str] = []
    for k, v in params.items():
        flags += [f"--{'json' if k == 'json_out' else k.replace('_', '-')}", str(v)]
    return shlex.join([sys.executable, "-m", "failover.bench.relay", *flags]) + "   (in-process; equivalent)"


# --------------------------------------------------------------------------- child processes


def _child_env() -> dict[str, str]:
    # FAILOVER_* variables would override the config files: each child is defined by its flags/file.
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
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if not self.alive:
            code = self.proc.returncode if self.proc is not None else None
            raise BenchFailure(f"the {self.name} process exited (code {code}); its log ends:\n{self.tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by pid, wait, then SIGKILL; always reaps."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            progress(f"{self.name} (pid {self.proc.pid}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, chars: int = 2500) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


class Rig:
    """The venue and the sidecar processes, their files, and how to stop them."""

    def __init__(self) -> None:
        from failover.procs import free_port

        self.workdir = Path(tempfile.mkdtemp(prefix="failover-bench-relay-"))
        self.sock_dir = Path(tempfile.mkdtemp(prefix="fo-relay-", dir="/tmp"))  # short: unix path limit
        self.socket = str(self.sock_dir / "sidecar.sock")
        self.gateways = {p: f"127.0.0.1:{free_port()}" for p in PATHS}
        self.venue_control = f"127.0.0.1:{free_port()}"
        # Nothing listens here: the sidecar runs on its seeded state file, no control plane.
        self.coordinator = f"127.0.0.1:{free_port()}"
        self.venue = Child(
            "venue",
            ["venue", "run", "--name", "bench", "--control", self.venue_control]
            + [a for p, addr in self.gateways.items() for a in ("--gateway", f"{p}={addr}")],
            self.workdir / "venue.log",
        )
        self.sidecar = Child("sidecar", [], self.workdir / "sidecar.log")
        self.keep_logs = False

    def write_sidecar_files(self) -> Path:
        from failover_sidecar import state_file

        from failover.model.convert import group_pb
        from failover.model.spec import GroupSpec, PathSpec
        from failover.v1 import types_pb2 as pb

        spec = GroupSpec(
            name=GROUP, paths=[PathSpec(name=p, endpoints={"default": a}) for p, a in self.gateways.items()]
        )
        state_path = self.workdir / "sidecar.state.json"
        decision = pb.Decision(
            group=GROUP,
            paths=list(PATHS),
            epoch=pb.Epoch(era=0, revision=1),
            reason="seeded by the relay benchmark",
            leader_id="bench",
        )
        state_file.save(
            state_path,
            HOST_ID,
            state_file.SavedState(
                definitions={GROUP: group_pb(spec, 1, "default")}, decisions={GROUP: decision}
            ),
        )
        cfg = {
            "host_id": HOST_ID,
            "groups": [GROUP],
            "coordinators": [self.coordinator],
            "state_file": str(state_path),
            "strategies": [STRATEGY],
            "listen": {"socket": self.socket},
        }
        path = self.workdir / "sidecar.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def start_venue(self) -> None:
        self.venue.start()
        progress(f"venue started (pid {self.venue.pid}); gateways {self.gateways}; logs in {self.workdir}")

    def start_sidecar(self) -> None:
        cfg = self.write_sidecar_files()
        self.sidecar.args = ["sidecar", "--config", str(cfg)]
        self.sidecar.start()
        progress(f"sidecar started (pid {self.sidecar.pid}) on unix:{self.socket}")

    async def venue_ready(self, timeout: float) -> None:
        """The venue printed its control address (it prints it once every listener is bound)."""
        end = time.monotonic() + timeout
        while "control " not in self.venue.tail(100_000):
            self.venue.check()
            if time.monotonic() > end:
                raise BenchFailure(
                    f"the venue did not bind within {timeout:.0f}s; its log:\n{self.venue.tail()}"
                )
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.sidecar.stop()  # first: it logs out of the venue
        self.venue.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if self.keep_logs:
            progress(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- the direct strategy


class DirectClient(asyncio.Protocol):
    """A minimal strategy speaking the venue protocol itself: logon, then ``new`` -> ``ack``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prefix: str) -> None:
        self.loop = loop
        self.prefix = prefix
        self.transport: asyncio.Transport | None = None
        self.decoder = vp.FrameDecoder()
        self.seq = vp.SeqTracker()
        self.logged_on = False
        self.logon_reply: asyncio.Future[vp.Message] = loop.create_future()
        self.logout_ack: asyncio.Future[None] = loop.create_future()
        self.pending: dict[str, asyncio.Future[vp.Message]] = {}
        self.error = ""
        self.seq_gaps = 0
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, address: str, sender: str, prefix: str, timeout: float = 5.0) -> DirectClient:
        loop = asyncio.get_running_loop()
        host, port = parse_host_port(address)
        async with asyncio.timeout(timeout):
            _, client = await loop.create_connection(lambda: cls(loop, prefix), host, port)
            client.write(vp.logon(sender, 0))
            reply = await client.logon_reply
        if reply["t"] != vp.MsgType.LOGON_ACK:
            client.close()
            raise BenchFailure(f"direct logon to {address} refused: {reply.get('reason')}")
        client.seq.reset()
        client.logged_on = True
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            msgs = self.decoder.feed(data)
        except vp.ProtocolError as exc:
            msgs = exc.decoded
            self._fail(f"framing error from the venue: {exc.reason}")
        for m in msgs:
            t = m["t"]
            if self.logged_on and self.seq.check(m) is not None:
                self.seq_gaps += 1
            if t == vp.MsgType.ACK or t == vp.MsgType.REJECT:
                fut = self.pending.pop(str(m.get("clordid")), None)
                if fut is not None and not fut.done():
                    fut.set_result(m)
            elif t == vp.MsgType.LOGON_ACK or t == vp.MsgType.LOGON_REJECT:
                if not self.logon_reply.done():
                    self.logon_reply.set_result(m)
            elif t == vp.MsgType.LOGOUT_ACK:
                if not self.logout_ack.done():
                    self.logout_ack.set_result(None)
            elif t == vp.MsgType.SESSION_REJECT:
                self._fail(f"the venue rejected a message of the direct session: {m.get('reason')}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"the venue closed the direct connection ({exc!r})" if exc else "the venue closed it")
        if not self.logout_ack.done():
            self.logout_ack.set_result(None)

    def _fail(self, reason: str) -> None:
        self.error = self.error or reason
        for fut in (self.logon_reply, *self.pending.values()):
            if not fut.done():
                fut.set_exception(BenchFailure(f"direct: {self.error}"))
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()

    def write(self, msg: vp.Message) -> None:
        if self.transport is None or self.transport.is_closing():
            raise BenchFailure(f"direct: not connected ({self.error or 'closed'})")
        self.transport.write(vp.encode(msg))

    def submit(self) -> asyncio.Future[vp.Message]:
        """Send one new order with a unique clordid; the future gets its ack (or reject)."""
        cid = f"{self.prefix}{next(self._ids)}"
        fut: asyncio.Future[vp.Message] = self.loop.create_future()
        self.pending[cid] = fut
        self.write(self.seq.stamp(vp.new_order(cid, PAYLOAD)))
        return fut

    async def logout(self, timeout: float = 2.0) -> None:
        if self.transport is not None and not self.transport.is_closing() and self.logged_on:
            self.write(self.seq.stamp(vp.logout()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.logout_ack), timeout)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def check_direct(m: vp.Message) -> None:
    if m["t"] != vp.MsgType.ACK:
        raise BenchFailure(f"direct: order {m.get('clordid')} got {m['t']}: {m.get('reason', '')}")


# --------------------------------------------------------------------------- bounded runs


class Watchdog:
    """Cancels the measurement when the run exceeds its time, or nothing completes for ``STALL_S``."""

    def __init__(self, max_seconds: float, stall_s: float = STALL_S) -> None:
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds
        self.stall_s = stall_s
        self.progress = 0
        self.phase = "starting"
        self.measuring = False
        self.reason = ""

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def guard(self, main: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(main, name="relay-bench")
        watcher = asyncio.create_task(self._watch(task), name="relay-bench-watchdog")
        try:
            await task
        except asyncio.CancelledError:
            if self.reason:
                raise BenchFailure(self.reason) from None
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, task: asyncio.Task[None]) -> None:
        last, since = self.progress, time.monotonic()
        while not task.done():
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if self.progress != last or not self.measuring:
                last, since = self.progress, now
            if now > self.deadline:
                self.reason = f"the run exceeded --max-seconds {self.max_seconds:g} (phase: {self.phase})"
            elif now - since > self.stall_s:
                self.reason = f"no message completed for {self.stall_s:g}s (phase: {self.phase})"
            if self.reason:
                task.cancel()
                return


async def bounded(
    what: str, timeout: float, probe: Callable[[], Coroutine[Any, Any, bool]], rig: Rig
) -> None:
    """Poll ``probe`` until True, within ``timeout``; gRPC errors count as not yet."""
    end = time.monotonic() + timeout
    last = ""
    while True:
        rig.venue.check()
        rig.sidecar.check()
        try:
            if await probe():
                return
        except grpc.aio.AioRpcError as exc:
            last = f" (last: {exc.code().name}: {exc.details()})"
        if time.monotonic() > end:
            raise BenchFailure(f"{what}: not within {timeout:.0f}s{last}")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- the measurement


@dataclass
class Results:
    direct: Dist = field(default_factory=lambda: Dist("direct", keep_samples=True))
    relay: Dist = field(default_factory=lambda: Dist("relay", keep_samples=True))
    # The relay round trip split by the sidecar's own stage timings (Outcome.stages, us):
    # queue = the strategy message arrived in the order path -> written to the venue session;
    # venue = written -> the venue's reply handled; outside = the rest (both gRPC hops, the
    # client library, the sidecar's Relay stream handler, the event loops' scheduling).
    relay_queue: Dist = field(default_factory=lambda: Dist("relay-queue"))
    relay_venue: Dist = field(default_factory=lambda: Dist("relay-venue"))
    relay_outside: Dist = field(default_factory=lambda: Dist("relay-outside"))
    blocks: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=dict)
    latency_cpu: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    relay_paths: dict[str, int] = field(default_factory=dict)


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
        self.relay_sent = 0
        self.direct_sent = 0

    # ---------------------------------------------------------------- submitters

    def submit_direct(self) -> asyncio.Future[vp.Message]:
        assert self.direct is not None
        self.direct_sent += 1
        return self.direct.submit()

    def submit_relay(self) -> asyncio.Future[Any]:
        assert self.sc is not None
        self.relay_sent += 1
        return self.sc.submit(GROUP, PAYLOAD)[1]

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
        dist: Dist | None,
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
        dist: Dist | None,
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
        sc = self.sc = await Sidecar.connect(rig.socket, STRATEGY)

        async def routed_on_primary() -> bool:
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
        self.direct = await DirectClient.connect(rig.gateways["primary"], DIRECT_SENDER, "direct-")
        # The sidecar at rest: heartbeats on both paths, the coordinator link retrying an unused port.
        w = CpuWindow({"sidecar": rig.sidecar.pid})
        await asyncio.sleep(IDLE_SAMPLE_S)
        idle = w.finish()
        self.res.idle = {
            "wall_s": idle["wall_s"],
            "sidecar_cpu_s": idle["sidecar"],
            "sidecar_cores": round(idle["sidecar"] / idle["wall_s"], 4),
        }
        progress(f"sidecar at rest uses {self.res.idle['sidecar_cores'] * 100:.1f}% of a core")

    async def latency(self) -> None:
        """Round trips, one outstanding, direct and relay in alternating blocks."""
        wd, res = self.wd, self.res
        wd.measuring = True
        wd.phase = "warm-up"
        progress(f"warm-up: {self.warmup} direct, {self.warmup} relay (not recorded)")
        await self.one_at_a_time(self.submit_direct, check_direct, self.warmup, None)
        await self.one_at_a_time(self.submit_relay, self.check_relay, self.warmup, None)
        blocks = max(1, min(MAX_BLOCKS, self.messages // BLOCK_MIN))
        base, extra = divmod(self.messages, blocks)
        pids = {"sidecar": self.rig.sidecar.pid, "venue": self.rig.venue.pid, "strategy": os.getpid()}
        cpu = CpuWindow(pids)
        for b in range(blocks):
            n = base + (1 if b < extra else 0)
            order = ("direct", "relay") if b % 2 == 0 else ("relay", "direct")
            row: dict[str, Any] = {"block": b + 1, "messages": n, "order": list(order)}
            for kind in order:
                wd.phase = f"round trips, block {b + 1}/{blocks}, {kind}"
                d = Dist(kind, keep_samples=True)
                if kind == "direct":
                    await self.one_at_a_time(self.submit_direct, check_direct, n, d)
                    res.direct.merge(d)
                else:
                    await self.one_at_a_time(self.submit_relay, self.check_relay, n, d, self.observe_stages)
                    res.relay.merge(d)
                row[kind] = {"p50_us": d.pct(50), "p99_us": d.pct(99), "mean_us": d.summary()["mean_us"]}
            res.blocks.append(row)
            progress(
                f"block {b + 1}/{blocks}: {n} each; p50 direct {fmt_us(row['direct']['p50_us'])} us, "
                f"relay {fmt_us(row['relay']['p50_us'])} us"
            )
        res.latency_cpu = cpu.finish()
        wd.measuring = False

    async def throughput(self) -> None:
        wd = self.wd
        pids = {"sidecar": self.rig.sidecar.pid, "venue": self.rig.venue.pid, "strategy": os.getpid()}
        idle_cores = self.res.idle.get("sidecar_cores", 0.0)
        for window in self.inflight:
            for kind in ("direct", "relay"):
                submit: Callable[[], asyncio.Future[Any]]
                check: Callable[[Any], None]
                if kind == "direct":
                    submit, check = self.submit_direct, check_direct
                else:
                    submit, check = self.submit_relay, self.check_relay
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
                per_core = row["sidecar_msgs_per_cpu_s"] if kind == "relay" else None
                progress(
                    f"throughput {kind}, {window} in flight: {row['msgs_per_s']:,.0f} msg/s; "
                    f"sidecar {sc_cpu:.2f} CPU-s in {wall:.2f}s"
                    + (f" ({per_core:,.0f} msg per sidecar CPU-s)" if per_core else "")
                )
                await asyncio.sleep(0.2)

    async def final_checks(self) -> None:
        """Every message got exactly one answer: the sidecar's and the venue's own counters agree."""
        from failover.v1 import venue_pb2, venue_pb2_grpc

        assert self.sc is not None
        st = await self.sc.status()
        counters = {k: int(v) for k, v in st.counters.items()}
        flips = [
            {"from": f.from_path, "to": f.to_path, "trigger": f.trigger, "cause": f.cause} for f in st.flips
        ]
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
            "sidecar_counters": counters,
            "sidecar_flips": flips,
            "venue": venue,
            "direct_seq_gaps": self.direct.seq_gaps,
            "relay_outcome_paths": dict(self.res.relay_paths),
        }
        problems = []
        if counters.get("acked", 0) != self.relay_sent:
            problems.append(f"sidecar counted {counters.get('acked', 0)} acked of {self.relay_sent} relayed")
        if venue["orders"] != self.direct_sent + self.relay_sent:
            problems.append(
                f"venue booked {venue['orders']} orders, {self.direct_sent + self.relay_sent} sent"
            )
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
        if self.sc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.sc.close(), 5)

    async def run(self) -> None:
        try:
            await self.setup()
            await self.latency()
            if self.throughput_messages > 0:
                await self.throughput()
            self.wd.phase = "final checks"
            await self.final_checks()
        finally:
            await self.close()


# --------------------------------------------------------------------------- output


def added(res: Results) -> dict[str, float | None]:
    """Relay minus direct, per statistic (us)."""
    d, r = res.direct.summary(), res.relay.summary()
    if not d.get("count") or not r.get("count"):
        return {}
    return {k: round(r[k] - d[k], 1) for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")}


def render(res: Results) -> None:
    t = Table(title="round trip, one message outstanding (us)", title_justify="left")
    t.add_column("strategy ->")
    for col in ("n", "p50", "p90", "p99", "p99.9", "max", "mean"):
        t.add_column(col, justify="right")
    for name, dist, what in (
        ("direct", res.direct, "venue: new -> ack"),
        ("relay", res.relay, "sidecar -> venue: send -> outcome ACKED"),
    ):
        s = dist.summary()
        t.add_row(
            f"{name} ({what})",
            str(s.get("count", 0)),
            *(fmt_us(s.get(k)) for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")),
        )
    a = added(res)
    if a:
        t.add_row(
            "[bold]added by the sidecar (relay - direct)[/bold]",
            "",
            *(
                f"[bold]{fmt_us(a[k])}[/bold]"
                for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")
            ),
        )
    out.print(t)
    if a:
        out.print(
            f"mean added latency: {a['p50_us']:,.0f} us at p50 (relay p50 - direct p50), "
            f"{a['mean_us']:,.0f} us on the means; each row's percentiles come from its own histogram, "
            "so the 'added' row is a difference of percentiles, not a percentile of differences"
        )
    if res.relay_outside.count:
        sp = Table(
            title="where the relay round trip goes (us), by the sidecar's own stage timings",
            title_justify="left",
        )
        sp.add_column("stage")
        for col in ("n", "p50", "p90", "p99", "mean"):
            sp.add_column(col, justify="right")
        for dist, what in (
            (res.relay_queue, "queue: in the sidecar's order path until written to the primary session"),
            (res.relay_venue, "venue: written -> the venue's ack handled by the sidecar"),
            (res.relay_outside, "outside: the rest (gRPC both ways, client library, Relay handler, loops)"),
        ):
            sm = dist.summary()
            sp.add_row(
                what,
                str(sm["count"]),
                *(fmt_us(sm.get(k)) for k in ("p50_us", "p90_us", "p99_us", "mean_us")),
            )
        out.print(sp)
        out.print(
            "stage timings are whole microseconds measured inside the sidecar (Outcome.stages); "
            "outside = round trip - queue - venue, per message"
        )
    if res.latency_cpu:
        c = res.latency_cpu
        total = res.direct.count + res.relay.count
        out.print(
            f"CPU during the round trips ({total} messages, {c['wall_s']:.1f}s): "
            f"sidecar {c['sidecar']:.2f}s (loop thread {c['sidecar_main_thread']:.2f}s), "
            f"venue {c['venue']:.2f}s, strategy (this process) {c['strategy']:.2f}s, "
            f"others {c['other_processes']:.2f}s (other processes and kernel softirq time)"
        )
    if res.throughput:
        tt = Table(title="throughput: a sliding window of N messages outstanding", title_justify="left")
        for col in (
            "path",
            "in flight",
            "msgs",
            "msg/s",
            "rtt p50 us",
            "rtt p99 us",
            "sidecar CPU-s",
            "cores",
            "loop CPU-s",
            "msg/sidecar CPU-s",
            "less idle",
            "msg/loop CPU-s",
            "venue CPU-s",
            "strategy CPU-s",
            "others CPU-s",
        ):
            tt.add_column(col, justify="left" if col == "path" else "right")
        for row in res.throughput:
            cpu, rt = row["cpu_s"], row["round_trip"]
            relay = row["path"] == "relay"
            tt.add_row(
                row["path"],
                str(row["inflight"]),
                str(row["messages"]),
                f"{row['msgs_per_s']:,.0f}",
                fmt_us(rt.get("p50_us")),
                fmt_us(rt.get("p99_us")),
                f"{cpu['sidecar']:.2f}",
                f"{row['sidecar_cores']:.2f}",
                f"{cpu['sidecar_main_thread']:.2f}",
                fmt_us(row["sidecar_msgs_per_cpu_s"]) if relay else "-",
                fmt_us(row["sidecar_msgs_per_cpu_s_less_idle"]) if relay else "-",
                fmt_us(row["sidecar_msgs_per_main_thread_cpu_s"]) if relay else "-",
                f"{cpu['venue']:.2f}",
                f"{cpu['strategy']:.2f}",
                f"{cpu['other_processes']:.2f}",
            )
        out.print(tt)
        out.print(
            "msg/sidecar CPU-s = messages / the sidecar process's utime+stime over the row (all its "
            "threads; /proc ticks of "
            f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms): the messages one sidecar relays per second on one "
            "core. 'less idle' subtracts the sidecar's CPU at rest "
            f"({res.idle.get('sidecar_cores', 0) * 100:.1f}% of a core: heartbeats on two paths, the "
            "coordinator link retrying). loop thread = the sidecar's main thread (its asyncio loop) alone; "
            "the rest is gRPC's threads; 'msg/loop CPU-s' is the ceiling when that one thread is the "
            "bottleneck. On direct rows the sidecar is idle: its CPU is that rest load. "
            "cores = sidecar CPU-s / wall s: near 1.0, the sidecar was the bottleneck; otherwise the "
            "strategy, the venue or others (same 2 cores) were. others = machine busy time charged to none "
            "of the three processes: other processes and kernel softirq work (loopback packet delivery)."
        )


def write_json(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(doc, indent=1) + "\n")
        progress(f"raw figures written to {path}")


# --------------------------------------------------------------------------- the command


def relay(
    messages: Annotated[
        int,
        typer.Option(
            "--messages", min=1, max=10_000_000, help="Recorded round trips, direct and relay each."
        ),
    ] = 100_000,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, max=1_000_000, help="Unrecorded round trips of each first.")
    ] = 2_000,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the raw figures to this file.")
    ] = None,
    inflight: Annotated[
        str,
        typer.Option(
            "--inflight", help="Throughput runs: messages outstanding, comma-separated (e.g. 1,64)."
        ),
    ] = "1",
    throughput_messages: Annotated[
        int,
        typer.Option(
            "--throughput-messages", min=0, max=10_000_000, help="Messages per throughput row (0: skip)."
        ),
    ] = 20_000,
    max_seconds: Annotated[
        float, typer.Option("--max-seconds", min=10, help="Abort (exit 1) when the run takes longer.")
    ] = 600.0,
) -> None:
    """Round trip strategy -> venue, direct vs through a sidecar process, and one sidecar's throughput."""
    windows = parse_inflight(inflight)
    params: dict[str, Any] = {
        "messages": messages,
        "warmup": warmup,
        "inflight": ",".join(map(str, windows)),
        "throughput_messages": throughput_messages,
        "max_seconds": max_seconds,
    }
    if json_out is not None:
        params["json_out"] = str(json_out)
    cmd = command_line(params)
    m = machine_info()
    notes = [
        "three processes on this machine: the venue simulator, one sidecar, the strategy (this process); "
        "they share the machine's cores with each other and with anything else running",
        "direct: this process speaks the venue protocol to the primary gateway itself "
        "(asyncio protocol, new -> ack); relay: failover_client.api.Sidecar over the sidecar's unix socket "
        "(Relay stream; outcome ACKED), the sidecar writing to its warm primary session",
        "no control plane: the sidecar's state file is seeded with the group and a decision "
        "[primary, backup] before it starts; its coordinator address is an unused port "
        "(its link keeps retrying)",
        f"round trips: {warmup} warm-up of each, then {messages} of each in alternating blocks; "
        "clock: CLOCK_MONOTONIC in this process, from just before the send to the task resuming "
        "with the answer",
    ]
    out.rule("failover bench relay")
    out.print(f"command:  {cmd}", markup=False)
    out.print(f"started:  {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    out.print(
        f"machine:  {m['cpus_usable']} usable cores ({m['cpu_model']}), Linux {m['kernel']}, {m['network']}; "
        f"load average {m['load_average_at_start']} at start",
        markup=False,
    )
    out.print(f"software: Python {m['python']}, grpcio {m['grpcio']}")
    out.print("params:   " + ", ".join(f"{k}={v}" for k, v in params.items()), markup=False)
    for n in notes:
        out.print(f"note:     {n}", markup=False)

    res = Results()
    doc: dict[str, Any] = {
        "benchmark": "relay",
        "command": cmd,
        "machine": m,
        "params": params,
        "notes": notes,
    }
    wd = Watchdog(max_seconds)
    rig: Rig | None = None
    code = 0
    started = time.monotonic()
    try:
        rig = Rig()
        doc["setup"] = {
            "gateways": rig.gateways,
            "venue_control": rig.venue_control,
            "sidecar_socket": rig.socket,
            "unused_coordinator_address": rig.coordinator,
            "group": GROUP,
            "strategy_id": STRATEGY,
        }
        bench = Bench(
            rig,
            res,
            wd,
            messages=messages,
            warmup=warmup,
            inflight=windows,
            throughput_messages=throughput_messages,
        )
        asyncio.run(wd.guard(bench.run()))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except BenchFailure as exc:
        code, doc["error"] = 1, str(exc)
    except Exception as exc:  # unexpected: one line, not a traceback
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        if rig is not None:
            if code:
                rig.keep_logs = True
            rig.stop()
    doc["ok"] = code == 0
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    doc["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["latency"] = {"direct": res.direct.to_json(), "relay": res.relay.to_json(), "added_us": added(res)}
    doc["relay_split_us"] = {
        "queue": res.relay_queue.summary(),
        "venue": res.relay_venue.summary(),
        "outside": res.relay_outside.summary(),
    }
    doc["latency_blocks"] = res.blocks
    doc["latency_cpu_s"] = res.latency_cpu
    doc["sidecar_at_rest"] = res.idle
    doc["throughput"] = res.throughput
    doc["checks"] = res.checks
    render(res)
    if res.checks:
        c = res.checks
        out.print(
            f"checks: {c['relay_sent']} relayed, sidecar acked {c['sidecar_counters'].get('acked', 0)}; "
            f"venue booked {c['venue']['orders']} orders "
            f"({c['direct_sent']} direct + {c['relay_sent']} relay), "
            f"{c['venue']['duplicates']} duplicates; sidecar flips: {len(c['sidecar_flips'])}"
        )
    out.print(
        f"elapsed {doc['elapsed_s']}s; load average {doc['load_average_at_end']} at the end", markup=False
    )
    write_json(json_out, doc)
    if code:
        out.print("[red]FAILED:[/red] " + escape(doc["error"]))
        raise typer.Exit(code)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        typer.run(relay)
    except KeyboardInterrupt:
        sys.exit(130)
