"""The bench's own etcd watch on the routes, in a child process: when each route revision became visible."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

from failover.bench.report import BenchFailure
from failover.procs import child_env


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
        # From etcd's revision now, registered before "ready" (a watch from a passed revision
        # waits for etcd's 100 ms catch-up loop before it sends anything).
        async with store.watch(prefix + "routes/", 0) as w:
            rev = await w.started()
            print(f"ready {rev}", flush=True)
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
                "from failover.bench.apply_latency.watch import watch_child; watch_child()",
                ",".join(self.endpoints),
                self.prefix,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                env=child_env(drop_prefix="FAILOVER_"),
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
            raise BenchFailure(f"the etcd watcher process did not start; see {self.log_path}")
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
                raise BenchFailure(f"the etcd watcher process ended; see {self.log_path}")
            left = end - time.monotonic()
            if left <= 0:
                raise BenchFailure(
                    f"the bench's etcd watch did not see route revision {rev} within {timeout}s"
                )
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
