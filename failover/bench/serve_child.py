"""What every bench floor child shares: serve, say ``ready``, run until SIGTERM/SIGINT;
and the parent's side: start one and wait for its ``ready`` line before measuring (it is
stopped by its pid, like every child).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from failover.bench.report import BenchFailure
from failover.procs import Child, ChildExited, child_env


def floor_child(name: str, module: str, args: list[str], log_path: Path) -> Child:
    """``python -m module ARGS`` as a child (FAILOVER_* variables dropped: flags define it)."""
    return Child(
        name, [sys.executable, "-m", module, *args], log_path, env=child_env(drop_prefix="FAILOVER_")
    )


async def start_ready(child: Child, timeout_s: float) -> None:
    """Start ``child`` and wait until it prints ``ready`` (BenchFailure with its log if not)."""
    child.start()
    end = time.monotonic() + timeout_s
    while "ready" not in child.tail(10_000):
        try:
            child.check(f"the {child.name} process")
        except ChildExited as exc:
            raise BenchFailure(str(exc)) from None
        if time.monotonic() > end:
            raise BenchFailure(f"the {child.name} process did not start; its log:\n{child.tail()}")
        await asyncio.sleep(0.05)


async def until_stopped() -> None:
    """Print ``ready``, then wait for SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print("ready", flush=True)
    await stop.wait()


def child_main(
    doc: str,
    prog: str,
    options: dict[str, type],
    serve: Callable[..., Coroutine[Any, Any, None]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``--NAME VALUE`` for each required option and run ``serve(**options)``."""
    ap = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    for name, kind in options.items():
        ap.add_argument(f"--{name}", type=kind, required=True)
    args: dict[str, Any] = vars(ap.parse_args(argv))
    asyncio.run(serve(**args))
    return 0
