"""What machine and code a measurement ran on, how busy the machine was, and the JSON file it writes.

One home for the demo, the benchmarks and the tests: every result document
carries the same ``machine`` block, CPU is read the same way (``/proc``), and
results are written by one function.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc

from failover.etcdproc import etcd_binary

ROOT = Path(__file__).resolve().parent.parent  # the checkout (or site-packages) holding failover/


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def etcd_version() -> str:
    try:
        r = subprocess.run([etcd_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0] if r.stdout else "unknown"
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "unknown"


def machine_info(network: str = "loopback (127.0.0.1) only", *, etcd: bool = False) -> dict[str, Any]:
    """Cores, CPU, kernel, software versions, the network used and the load average now.

    ``etcd``: also run ``etcd --version`` (for measurements that start etcd).
    """
    info: dict[str, Any] = {
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "network": network,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if etcd:
        info["etcd"] = etcd_version()
    return info


def code_info() -> dict[str, Any]:
    """Which code runs: where it is imported from, and its git commit (and modified files) in a checkout."""
    info: dict[str, Any] = {"path": str(ROOT), "commit": "unknown", "dirty": None}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if r.returncode == 0:
            info["commit"] = r.stdout.strip()
            d = subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            info["dirty"] = sorted(line[3:] for line in d.stdout.splitlines()) if d.returncode == 0 else None
    return info


# --- CPU accounting -----------------------------------------------------------


def cpu_times(stat_line: str) -> tuple[int, int]:
    """(busy, steal) clock ticks of /proc/stat's first line, summed over every core.

    Steal is time this virtual machine's cores wanted to run and the hypervisor ran
    something else: no process here used it, so it is not "other processes"' load, and
    it stretches every latency measured meanwhile. Busy excludes it.
    """
    parts = stat_line.split()
    if not parts or parts[0] != "cpu":
        raise ValueError(f"not the cpu line of /proc/stat: {stat_line[:40]!r}")
    ticks = [int(x) for x in parts[1:9]] + [0] * (8 - len(parts[1:9]))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return user + nice + system + irq + softirq, steal


def _proc_stat() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far; zeros where /proc is unreadable."""
    try:
        with open("/proc/stat") as f:
            busy, steal = cpu_times(f.readline())
    except (OSError, ValueError):
        return 0.0, 0.0
    tck = os.sysconf("SC_CLK_TCK")
    return busy / tck, steal / tck


def proc_cpu_s(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads), or of one thread of it, in seconds; 0.0 if gone."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 (state) first
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def own_cpu_s() -> float:
    """CPU seconds of this process and of every child it has reaped."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class MachineLoad:
    """How much CPU other processes used while we measured (the machine is shared)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = _proc_stat()
        self.own0 = own_cpu_s()
        self.load0 = os.getloadavg()

    def finish(self) -> dict[str, Any]:
        """Call after every child was reaped (their CPU is then in RUSAGE_CHILDREN)."""
        wall = time.monotonic() - self.t0
        busy_now, steal_now = _proc_stat()
        busy, steal = busy_now - self.busy0, steal_now - self.steal0
        own = own_cpu_s() - self.own0
        other = max(0.0, busy - own)
        cores = len(os.sched_getaffinity(0)) or 1
        return {
            "wall_s": round(wall, 1),
            "machine_busy_cpu_s": round(busy, 1),
            "ours_cpu_s": round(own, 1),
            "other_processes_cpu_s": round(other, 1),
            "other_processes_mean_cores": round(other / wall, 2) if wall > 0 else 0.0,
            "hypervisor_steal_cpu_s": round(steal, 2),
            # of the time the usable cores had: 0.05 = the host ran something else 5 % of it
            "hypervisor_steal_share": round(steal / (wall * cores), 4) if wall > 0 else 0.0,
            "loadavg_at_start": [round(x, 2) for x in self.load0],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        }


STEAL_WARN_SHARE = 0.02
"""Above this share of the cores' time taken by the host, a run's tails are mostly the host's
(docs/benchmarks.md, "Hypervisor steal"): the load line says so."""


def load_line(ml: dict[str, Any]) -> str:
    """The one-line account of a ``MachineLoad.finish`` every benchmark prints after its tables."""
    steal = ml.get("hypervisor_steal_cpu_s", 0.0)
    share = ml.get("hypervisor_steal_share", 0.0)
    line = (
        f"machine load while measuring: other processes used {ml['other_processes_cpu_s']} CPU-s "
        f"(mean {ml['other_processes_mean_cores']} cores) of {ml['machine_busy_cpu_s']} busy CPU-s in "
        f"{ml['wall_s']} s; hypervisor steal {steal} CPU-s ({share * 100:.1f} % of the cores' time); "
        f"load average {ml['loadavg_at_end'][0]} at the end"
    )
    if share > STEAL_WARN_SHARE:
        line += (
            f"\nWARNING: the host took {share * 100:.1f} % of this machine's cores while it measured: "
            "the tails (p99, max) of this run are mostly the host's pauses, not the code's; "
            "compare runs with steal near 0"
        )
    return line


class CpuWindow:
    """CPU seconds used by named processes, and by everything else, over a window.

    ``<name>_main_thread``: the process's main thread alone (its asyncio event loop;
    the rest is gRPC's threads and the like).
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.start = {k: proc_cpu_s(p) for k, p in pids.items()}
        self.start_main = {k: proc_cpu_s(p, p) for k, p in pids.items()}
        self.busy0, self.steal0 = _proc_stat()

    def finish(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        used = {k: proc_cpu_s(p) - self.start[k] for k, p in self.pids.items()}
        main = {k: proc_cpu_s(p, p) - self.start_main[k] for k, p in self.pids.items()}
        busy_now, steal_now = _proc_stat()
        busy = busy_now - self.busy0
        res = {k: round(v, 3) for k, v in used.items()}
        res.update({f"{k}_main_thread": round(v, 3) for k, v in main.items()})
        res["wall_s"] = round(wall, 3)
        res["machine_busy"] = round(busy, 3)
        # Busy time charged to none of ours: other processes, and softirq work (loopback delivery).
        res["other_processes"] = round(max(0.0, busy - sum(used.values())), 3)
        res["hypervisor_steal"] = round(steal_now - self.steal0, 3)
        return res


# --- output -----------------------------------------------------------------------


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write a result document (UTF-8, indented, one trailing newline)."""
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
