"""`failover chaos` and `failover demo` killed outright leave nothing behind.

Ctrl-C and SIGTERM stop every process a run started, by pid (its own stop paths). A
SIGKILL runs none of them: then the kernel must (``PR_SET_PDEATHSIG``, set by
``failover.procs`` on children started from the main thread). Before, the chaos run
started its whole cluster, and the demo its etcd, from a worker thread, and those
children outlived them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from failover.procs import Child
from tests.procs import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

READY_S = 120.0  # three etcd members, three replicas, a venue, a sidecar on two busy cores
GONE_S = 10.0


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = {int(k) for k in (task / "children").read_text().split()}
                todo.extend(kids - out)
                out |= kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:160].decode(errors="replace")
    except OSError:
        return "?"


TOOLS = {
    # command, a line printed once the children at risk run, how many run by then at least
    "chaos": (["chaos", "--duration", "10m", "--hosts", "1"], "chaos: cluster ready", 8),
    "demo": (["demo"], "starting 3 coordinator replicas", 2),  # etcd and the venue
}


@pytest.mark.parametrize("tool", list(TOOLS))
def test_a_run_killed_by_sigkill_takes_its_processes_with_it(tool: str, tmp_path: Path) -> None:
    args, ready, at_least = TOOLS[tool]
    run = Child(tool, [sys.executable, "-m", "failover.cli", *args], tmp_path / f"{tool}.log", cwd=REPO)
    run.start()
    children: set[int] = set()
    try:
        deadline = time.monotonic() + READY_S
        while ready not in run.log():
            assert time.monotonic() < deadline and run.alive, f"no {ready!r} line: {run.log()[-2000:]}"
            time.sleep(0.1)  # noqa: ASYNC251 - a line in another process's log: polled, bounded
        children = _descendants(run.pid)
        assert len(children) >= at_least, (children, run.log()[-2000:])
        run.kill()
        deadline = time.monotonic() + GONE_S
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)  # noqa: ASYNC251 - the kernel's kill of orphans is not an event we can await
        left = {p: _cmdline(p) for p in children if _alive(p)}
        assert not left, f"outlived the {tool} run: {left}"
    finally:
        run.kill()
        for p in children:  # ours (descendants of the run we started), by pid
            if _alive(p):
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
