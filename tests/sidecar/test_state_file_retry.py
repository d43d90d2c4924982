"""A state file write that fails is tried again until it succeeds, not only at the next decision.

The state file is what a sidecar restarted during a control-plane outage routes on
(static stability). A write that failed (a full disk, a directory gone) was logged and
then waited for the next decision, which may never come while the control plane is
down: a restart then routed on an older decision. The saver now retries with a
bounded backoff and says when the file is written again; ``failing`` tells the metric.
Real files: the state file's directory is a regular file (ENOTDIR) until the test
puts a directory in its place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from failover_sidecar import saver as saver_mod
from failover_sidecar import state_file
from failover_sidecar.saver import StateSaver

from failover.v1 import types_pb2 as pb

WAIT_S = 5.0


def _state(rev: int) -> state_file.SavedState:
    d = pb.Decision(group="g1", paths=["backup", "primary"], epoch=pb.Epoch(era=0, revision=rev), reason="t")
    return state_file.SavedState(decisions={"g1": d})


async def test_a_failed_write_is_retried_until_the_file_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(saver_mod, "RETRY_FIRST_S", 0.05)
    caplog.set_level(logging.INFO, logger="failover_sidecar.agent")
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    path = blocker / "h1.state.json"
    saver = StateSaver(str(path), "h1", lambda: _state(7))
    saver.schedule()
    async with asyncio.timeout(WAIT_S):
        while "cannot write state file" not in caplog.text:  # noqa: ASYNC110 - a log line has no event
            await asyncio.sleep(0.01)
    assert saver.failing, "the failure is not told"

    blocker.unlink()
    blocker.mkdir()  # the disk is writable again; no new decision comes
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        assert time.monotonic() < deadline, "the state file was never written after the failure"
        await asyncio.sleep(0.01)
    await saver.flush()
    assert state_file.load(path).decisions["g1"].epoch.revision == 7
    assert not saver.failing
    assert "written again" in caplog.text, caplog.text


async def test_stop_tries_once_more_then_gives_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that keeps failing does not hold the sidecar's stop: one last attempt, then stop."""
    monkeypatch.setattr(saver_mod, "RETRY_FIRST_S", 30.0)  # a stop must not wait for the backoff
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    saver = StateSaver(str(blocker / "h1.state.json"), "h1", lambda: _state(3))
    saver.schedule()
    t0 = time.monotonic()
    async with asyncio.timeout(WAIT_S):
        await saver.flush()
    assert time.monotonic() - t0 < 2.0
    assert saver.failing
