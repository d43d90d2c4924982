"""``failover bench fanout --split-cores``: the CPU split and the pinning of whole processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover.bench.cores import CoreSplitError, halves, pin
from failover.procs import Child

# A child with a second thread, so pinning must reach every task, not only the main one.
CHILD = """
import threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("ready", flush=True)
time.sleep(30)
"""


def test_halves_give_the_first_half_to_the_control_plane() -> None:
    assert halves({0, 1}) == ({0}, {1})
    assert halves({0, 1, 2, 3}) == ({0, 1}, {2, 3})
    assert halves({2, 5, 7}) == ({2}, {5, 7})


def test_one_cpu_cannot_be_split() -> None:
    with pytest.raises(CoreSplitError, match="at least 2 usable CPUs"):
        halves({3})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_pin_sets_every_thread_of_the_process(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    child = Child("two-threads", [sys.executable, "-c", CHILD], tmp_path / "child.log").start()
    try:
        deadline = time.monotonic() + 30
        while "ready" not in child.log():
            assert child.alive and time.monotonic() < deadline, child.log()
            time.sleep(0.02)  # noqa: ASYNC251 - a line in another process's log: polled, bounded
        tasks = [int(t.name) for t in Path(f"/proc/{child.pid}/task").iterdir()]
        assert len(tasks) >= 2
        assert pin(child.pid, {cpu}) == len(tasks)
        assert all(os.sched_getaffinity(t) == {cpu} for t in tasks)
    finally:
        child.kill()


def test_split_cores_without_stream_replicas_is_a_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "failover.cli", "bench", "fanout", "--runs", "1", "--split-cores"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "--split-cores needs --stream-replicas 1 or more" in r.stderr
    assert "Traceback" not in r.stderr
