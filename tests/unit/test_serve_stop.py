"""``failover.cli.serve``: SIGTERM is logged, and a stop that takes long says where it waits.

A sidecar once stayed up 10 s after SIGTERM with nothing in its log (not even whether
the signal arrived). Now the signal is logged when acted on, and a server whose main
task has not ended ``STOP_SLOW_S`` after it logs every task and the await it waits at,
then keeps cancelling it until it ends.
"""

from __future__ import annotations

import subprocess
import sys

from tests.procs import REPO

SCRIPT = """
import asyncio, logging, os, signal, sys
from failover import cli
cli.STOP_SLOW_S = 0.2
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

async def stubborn_server() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass  # this cancel is lost, as one can be on Python 3.11
    await asyncio.sleep(30)  # ends at the next cancel

cli.serve(stubborn_server)
print("returned", flush=True)
"""


def test_sigterm_is_logged_and_a_slow_stop_names_the_await_it_waits_at() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "returned" in out.stdout
    assert "INFO SIGTERM: stopping" in out.stderr
    assert "still stopping after 0.2 s; waiting at:" in out.stderr, out.stderr
    # The stubborn task, at the line of its sleep.
    assert "stubborn_server > tasks.py" in out.stderr, out.stderr
