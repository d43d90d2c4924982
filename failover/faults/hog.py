"""A bounded CPU hog: N busy-loop child processes, each ending on its own after ``seconds``.

For the overload rows: the cluster shares its cores with processes that want all of
them. Each hog is a child in its own session (``failover.procs.Child``), stopped by
its pid; it also exits by itself when its time is up, so a test that dies leaves no
hog spinning (and the kernel kills it with us: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from failover.machine import proc_cpu_s
from failover.procs import Child, child_env

_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


class CpuHog:
    def __init__(self, processes: int, seconds: float, log_dir: Path) -> None:
        self.seconds = seconds
        self.children = [
            Child(
                f"hog{i}",
                [sys.executable, "-c", _LOOP.format(seconds=seconds)],
                log_dir / f"hog{i}.log",
                env=child_env(),
            )
            for i in range(processes)
        ]
        self.started = 0.0
        self.cpu_s = 0.0

    def start(self) -> CpuHog:
        self.started = time.monotonic()
        for c in self.children:
            c.start()
        return self

    @property
    def running(self) -> bool:
        return any(c.alive for c in self.children)

    def stop(self) -> float:
        """Stop every hog (by pid) and reap it; returns the CPU seconds they used (read before
        reaping: a hog whose time ran out is still there to read until then)."""
        self.cpu_s = sum(proc_cpu_s(c.pid) for c in self.children if c.proc is not None)
        for c in self.children:
            c.stop(timeout=5.0)
        return self.cpu_s
