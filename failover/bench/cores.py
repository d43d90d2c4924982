"""Split the machine's cores between the control plane and the fan-out (``--split-cores``).

On one small machine the bench's S streams and the replica that serves them keep
every core busy, so an operator call's hops (the probe, the leader, etcd) wait for a
core whatever the leader does. Deployed, stream-only replicas and the sidecars run on
other machines; pinning the two sides to disjoint CPU sets emulates that on one box,
so the operator figures show what the leader's own process does during a fan-out.
"""

from __future__ import annotations

import os
from pathlib import Path


class CoreSplitError(RuntimeError):
    """The cores cannot be split (fewer than two usable CPUs)."""


def halves(cpus: set[int] | None = None) -> tuple[set[int], set[int]]:
    """(control plane, fan-out): the usable CPUs cut in two, the first half to the control plane."""
    usable = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    if len(usable) < 2:
        raise CoreSplitError(f"--split-cores needs at least 2 usable CPUs; this process may use {usable}")
    mid = len(usable) // 2
    return set(usable[:mid]), set(usable[mid:])


def pin(pid: int, cpus: set[int]) -> int:
    """Pin every thread of ``pid`` to ``cpus`` (threads it starts later inherit it).

    ``sched_setaffinity`` acts on one thread, so each task of /proc/<pid>/task is set;
    a thread that ends meanwhile is skipped. Returns how many threads were pinned.
    """
    done = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            continue
        done += 1
    return done
