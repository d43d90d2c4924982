"""A sidecar stops although one of its long-running tasks loses the cancel it was sent.

On Python 3.11 a cancel can be lost (``asyncio.wait_for`` whose inner future completes in
the same loop step; gRPC's aio calls catch ``CancelledError`` in several places). ``serve``
cancels the app's main task again every 0.5 s, but the app ran its tasks in an
``asyncio.TaskGroup``, which cancels its children once: a child that lost that cancel
kept the sidecar running after SIGTERM, idle in ``select`` (the stack dump of the gate
run that failed `test_stop_under_load`). Now every child is cancelled until it ends.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from failover_sidecar.app import SidecarApp
from failover_sidecar.config import ListenSection, SidecarConfig

from failover.aio import cancel_until_done
from failover.model.spec import GroupSpec, PathSpec
from failover.procs import free_port
from tests.lost_cancel import LosesCancels
from tests.sidecar_integration.harness import short_dir

GROUP = "g1"


def config(tmp_path: Path, sock_dir: Path) -> SidecarConfig:
    return SidecarConfig(
        host_id="h1",
        groups=[GROUP],
        coordinators=[f"127.0.0.1:{free_port()}"],
        state_file=str(tmp_path / "h1.state.json"),
        strategies=["s1"],
        listen=ListenSection(socket=str(sock_dir / "h1.sock")),
        bootstrap=[
            GroupSpec(
                name=GROUP,
                paths=[
                    PathSpec(name=p, endpoints={"default": f"127.0.0.1:{free_port()}"}) for p in ("a", "b")
                ],
            )
        ],
    )


async def test_a_child_that_loses_its_first_cancel_does_not_keep_the_sidecar_running(
    tmp_path: Path, monkeypatch
) -> None:
    sock_dir = short_dir("lostcancel")
    try:
        app = SidecarApp(config(tmp_path, sock_dir))
        child = LosesCancels()
        monkeypatch.setattr(app.orders, "run", child.run)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.ready.wait(), 10)
        # What `serve` does on SIGTERM: cancel, and cancel again until the task ends.
        ended = await cancel_until_done(task, every_s=0.1, limit_s=5.0)
        assert ended, f"the sidecar did not stop: its child saw {child.seen} cancel(s)"
        assert child.seen == 2
        assert not (sock_dir / "h1.sock").exists(), "the shutdown did not run to its end"
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
