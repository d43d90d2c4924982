"""What every bench floor child shares: serve, say ``ready``, run until SIGTERM/SIGINT.

The parent (``failover.bench.relay.rig.start_ready`` and the fan-out floor) waits for the
``ready`` line before it measures, and stops the child by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any


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
