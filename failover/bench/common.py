"""Shared plumbing of the benchmarks: histograms, processes, output.

Processes: etcd members (``EtcdCluster``) and coordinator replicas, each a
child started in its own session and stopped by its pid (SIGTERM, then
SIGKILL) in ``Cluster.stop``, which every command calls from ``finally`` so
Ctrl-C and errors leave nothing behind. etcd keeps its data on tmpfs under a
directory ``EtcdCluster.stop`` removes; coordinator logs go to a temporary
directory that is removed after a clean run and kept (and printed) after a
failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from failover import rpc
from failover.etcdproc import EtcdCluster, etcd_binary, free_port
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

GROUP = "cme-orders"
PATHS = ("primary", "backup")
# HdrHistogram range in microseconds: 1 us .. 10 min, 3 significant digits.
HIST_MAX_US = 600_000_000
HIST_DIGITS = 3

T = TypeVar("T")

# Wide enough for the tables when stdout is a file or a pipe (rich assumes 80 then).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 130)
_started = time.monotonic()


class BenchFailure(RuntimeError):
    """A measurement could not be completed (the message says which and why)."""


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the command started."""
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def ms(ns: int) -> str:
    return f"{ns / 1e6:.2f} ms"


# --- numbers -------------------------------------------------------------------


@dataclass
class Stats:
    """One latency distribution: HdrHistogram for percentiles, raw samples for the JSON."""

    name: str
    what: str
    hist: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIST_MAX_US, HIST_DIGITS))
    samples_us: list[int] = field(default_factory=list)
    # Samples below 1 us (a stream saw the decision before the reference instant was
    # processed): recorded in the histogram as 1 us, kept signed in samples_us.
    clamped: int = 0

    def record_ns(self, ns: int) -> None:
        """Record one sample; the JSON keeps it signed, the histogram clamps it to 1 us .. 10 min."""
        us = round(ns / 1000)
        self.samples_us.append(us)
        if us < 1:
            self.clamped += 1
        self.hist.record_value(min(max(us, 1), HIST_MAX_US))

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def summary(self) -> dict[str, Any]:
        h = self.hist
        if not self.count:
            return {"count": 0}
        return {
            "count": self.count,
            "p50_ms": h.get_value_at_percentile(50) / 1000,
            "p99_ms": h.get_value_at_percentile(99) / 1000,
            "max_ms": h.get_max_value() / 1000,
            "min_ms": h.get_min_value() / 1000,
            "mean_ms": round(h.get_mean_value() / 1000, 3),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            **self.summary(),
            "clamped_to_1us": self.clamped,
            "samples_us": self.samples_us,
        }


def fmt_ms(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


def print_stats(title: str, rows: list[Stats]) -> None:
    """The result table (p50/p99/max in ms), then what each row measures."""
    t = Table(title=title, title_justify="left")
    t.add_column("measure")
    t.add_column("n", justify="right")
    t.add_column("p50 ms", justify="right")
    t.add_column("p99 ms", justify="right")
    t.add_column("max ms", justify="right")
    for s in rows:
        sm = s.summary()
        t.add_row(
            s.name, str(s.count), fmt_ms(sm.get("p50_ms")), fmt_ms(sm.get("p99_ms")), fmt_ms(sm.get("max_ms"))
        )
    out.print(t)
    for s in rows:
        out.print(f"  {s.name}: {s.what}")


# --- the header ------------------------------------------------------------------


def command_line(subcommand: str, params: dict[str, Any]) -> str:
    """The command line as typed; when invoked in-process (tests), an equivalent one."""
    argv = list(sys.argv)
    if subcommand in argv[1:]:
        head = argv[0]
        if head.endswith(os.path.join("failover", "bench", "cli.py")):
            return shlex.join([sys.executable, "-m", "failover.bench.cli", *argv[1:]])
        if head.endswith(os.path.join("failover", "cli.py")):
            return shlex.join([sys.executable, "-m", "failover.cli", *argv[1:]])
        return shlex.join(argv)
    flags: list[str] = []
    for k, v in params.items():
        if v is None or v is False:
            continue
        flags.append(f"--{k.replace('_', '-')}")
        if v is not True:
            flags.append(str(v))
    return shlex.join(["failover", "bench", subcommand, *flags]) + "   (in-process; equivalent command)"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _etcd_version() -> str:
    try:
        r = subprocess.run([etcd_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0] if r.stdout else "unknown"
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "unknown"


def code_info() -> dict[str, Any]:
    """Which code runs: where the packages are imported from, and its git commit when it is a checkout."""
    import coordinator

    root = Path(coordinator.__file__).resolve().parent.parent
    info: dict[str, Any] = {"path": str(root), "commit": "unknown", "dirty": None}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if r.returncode == 0:
            info["commit"] = r.stdout.strip()
            d = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            info["dirty"] = sorted(line[3:] for line in d.stdout.splitlines()) if d.returncode == 0 else None
    return info


def _busy_cpu_seconds() -> float:
    """Machine-wide busy CPU seconds so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has reaped (coordinators, etcd)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class MachineLoad:
    """How much CPU other processes used while we measured (the machine is shared)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = _busy_cpu_seconds()
        self.own0 = _own_cpu_seconds()
        self.load0 = os.getloadavg()

    def finish(self) -> dict[str, Any]:
        """Call after every child was reaped (their CPU is then in RUSAGE_CHILDREN)."""
        wall = time.monotonic() - self.t0
        busy = _busy_cpu_seconds() - self.busy0
        own = _own_cpu_seconds() - self.own0
        other = max(0.0, busy - own)
        return {
            "wall_s": round(wall, 1),
            "machine_busy_cpu_s": round(busy, 1),
            "ours_cpu_s": round(own, 1),
            "other_processes_cpu_s": round(other, 1),
            "other_processes_mean_cores": round(other / wall, 2) if wall > 0 else 0.0,
            "loadavg_at_start": [round(x, 2) for x in self.load0],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        }


def machine_info() -> dict[str, Any]:
    return {
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "etcd": _etcd_version(),
        "network": "loopback (127.0.0.1) only",
    }


def print_header(title: str, cmd: str, params: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    info = machine_info()
    out.rule(title)
    out.print(f"command:  {cmd}")
    out.print(f"started:  {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    out.print(
        f"machine:  {info['cpus_usable']} usable cores ({info['cpu_model']}), Linux {info['kernel']}, "
        f"{info['network']}"
    )
    out.print(f"software: Python {info['python']}, grpcio {info['grpcio']}, {info['etcd']}")
    code = code_info()
    info["code"] = code
    dirty = f", modified: {', '.join(code['dirty'])}" if code["dirty"] else ""
    out.print(f"code:     {code['path']} at {code['commit'][:12]}{dirty}")
    la = os.getloadavg()
    out.print(f"load:     load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} at start")
    out.print("params:   " + ", ".join(f"{k}={v}" for k, v in params.items()))
    for k, v in extra.items():
        out.print(f"{k + ':':9s} {v}")
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# --- processes -------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    # FAILOVER_* variables would override the config file: runs are defined by the file alone.
    return {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}


@dataclass
class CoordinatorProc:
    """One ``python -m failover.cli coordinator --config FILE`` child, owned by us."""

    replica_id: str
    address: str
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- bench: start #{self.starts} at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "failover.cli", "coordinator", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)  # by pid: only our child

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def reap(self, timeout: float = 10.0) -> int | None:
        return None if self.proc is None else self.proc.wait(timeout=timeout)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def group_definition() -> dict[str, Any]:
    """The group of tests/procs.py: cme-orders with paths primary, backup (nothing listens there)."""
    return {
        "name": GROUP,
        "paths": [
            {"name": p, "endpoints": {"default": f"127.0.0.1:{9001 + i}"}} for i, p in enumerate(PATHS)
        ],
    }


class Cluster:
    """An etcd cluster and N coordinator replicas on loopback, all started and stopped by us."""

    def __init__(self, label: str, replicas: int, etcd_members: int, keep_logs: bool = False) -> None:
        self.label = label
        self.n = replicas
        self.etcd_members = etcd_members
        self.keep_logs = keep_logs
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"failover-bench-{label}-"))
        self.prefix = f"/bench-{uuid.uuid4().hex[:10]}/"
        self.etcd: EtcdCluster | None = None
        self.procs: list[CoordinatorProc] = []
        self.failed = False
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stopped = False

    @property
    def endpoints(self) -> list[str]:
        assert self.etcd is not None
        return self.etcd.endpoints

    def start(self) -> None:
        progress(f"[{self.label}] starting etcd ({self.etcd_members} member(s), tmpfs data)")
        self.etcd = EtcdCluster(self.etcd_members)
        self.etcd.start()
        for i in range(self.n):
            rid = f"c{i + 1}"
            port = free_port()
            cfg = {
                "replica_id": rid,
                "listen": f"127.0.0.1:{port}",
                "etcd": {"endpoints": self.etcd.endpoints, "prefix": self.prefix},
                "groups": [group_definition()],
            }
            path = self.log_dir / f"{rid}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            self.procs.append(CoordinatorProc(rid, f"127.0.0.1:{port}", path, self.log_dir / f"{rid}.log"))
        progress(f"[{self.label}] starting {self.n} coordinator(s); logs in {self.log_dir}")
        for p in self.procs:
            p.start()

    def by_id(self, replica_id: str) -> CoordinatorProc:
        for p in self.procs:
            if p.replica_id == replica_id:
                return p
        raise BenchFailure(f"leader {replica_id!r} is not one of our replicas")

    def channel(self, address: str) -> grpc.aio.Channel:
        """One long-lived channel per replica address (call inside the event loop)."""
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = rpc.channel(address)
        return ch

    def admin(self, address: str) -> Any:
        return admin_pb2_grpc.AdminStub(self.channel(address))

    async def status(self, address: str, timeout: float = 2.0) -> Any:
        st: apb.ClusterStatus = await self.admin(address).GetStatus(apb.GetStatusRequest(), timeout=timeout)
        return st

    async def switch(self, address: str, path: str, timeout: float) -> Any:
        # Forced: the bench runs no sidecars, so no host reports the path up (a guard rail).
        req = apb.SwitchRequest(group=GROUP, path=path, reason="bench", operator="bench", force=True)
        resp: apb.ControlResponse = await self.admin(address).Switch(req, timeout=timeout)
        return resp

    def check_alive(self, exclude: str = "") -> None:
        for p in self.procs:
            if p.replica_id != exclude and p.proc is not None and not p.alive:
                raise BenchFailure(
                    f"coordinator {p.replica_id} exited unexpectedly (code {p.proc.returncode}); "
                    f"its log ends with:\n{p.log_tail()}"
                )

    async def wait_ready(self, procs: list[CoordinatorProc] | None = None, timeout: float = 60.0) -> Any:
        """Until each given replica answers GetStatus with a leader and a decision for the group.

        Returns the last status seen (from the last replica checked).
        """
        deadline = time.monotonic() + timeout
        last_err = ""
        st: Any = None
        for p in procs or self.procs:
            while True:
                if not p.alive:
                    assert p.proc is not None
                    raise BenchFailure(
                        f"coordinator {p.replica_id} exited (code {p.proc.returncode}):\n{p.log_tail()}"
                    )
                try:
                    st = await self.status(p.address, timeout=1.0)
                    decided = any(g.definition.name == GROUP and g.HasField("decision") for g in st.groups)
                    if st.leader.address and decided:
                        break
                    last_err = f"leader={st.leader.replica_id or '-'} decided={decided}"
                except grpc.aio.AioRpcError as exc:
                    last_err = f"{exc.code().name}: {exc.details()}"
                if time.monotonic() > deadline:
                    raise BenchFailure(
                        f"coordinator {p.replica_id} not ready after {timeout:.0f}s ({last_err})"
                    )
                await asyncio.sleep(0.02)
        return st

    async def aclose(self) -> None:
        for ch in self._channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)
        self._channels.clear()

    def stop(self) -> None:
        """Stop every process we started (by pid) and remove etcd's data; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.stop()
        if self.etcd is not None:
            if self.failed:  # keep etcd's own logs next to the coordinators'
                for m in self.etcd.members:
                    with contextlib.suppress(OSError):
                        shutil.copy(m.log_path, self.log_dir / f"etcd-{m.name}.log")
            self.etcd.stop()
        if self.failed or self.keep_logs:
            print(f"coordinator and etcd logs kept in {self.log_dir}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)


async def retry_until(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    deadline_s: float,
    max_attempts: int = 200_000,
    retry_codes: frozenset[grpc.StatusCode] = frozenset(
        {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
    ),
    codes: dict[str, int] | None = None,
    first_errors: list[str] | None = None,
) -> tuple[T, int]:
    """Call ``attempt`` again at once on a retryable gRPC error; bounded in count and time.

    Returns (result, attempts). ``codes`` counts the errors seen, by name;
    ``first_errors`` gets the first few, with when each attempt started and ended.
    """
    start = time.monotonic()
    end = start + deadline_s
    for n in range(1, max_attempts + 1):
        sent = time.monotonic()
        try:
            return await attempt(), n
        except grpc.aio.AioRpcError as exc:
            if codes is not None:
                codes[exc.code().name] = codes.get(exc.code().name, 0) + 1
            if first_errors is not None and len(first_errors) < 5:
                now = time.monotonic()
                first_errors.append(
                    f"attempt {n} sent at +{(sent - start) * 1000:.1f} ms, failed at "
                    f"+{(now - start) * 1000:.1f} ms: {exc.code().name}: {exc.details()}"
                )
            if exc.code() not in retry_codes:
                raise BenchFailure(f"{what}: {exc.code().name}: {exc.details()}") from exc
            last = f"{exc.code().name}: {exc.details()}"
        if time.monotonic() > end:
            raise BenchFailure(f"{what}: no success within {deadline_s:.0f}s ({n} attempts; last {last})")
    raise BenchFailure(f"{what}: no success in {max_attempts} attempts")
