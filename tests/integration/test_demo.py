"""The demo as a user runs it: exit code, timeline, outcomes, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procs import REPO

pytestmark = [pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of an exited child is not "left behind"; check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    pid_file = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, "-m", "failover.cli", "demo", "--quick", "--pid-file", str(pid_file), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"},
    )
    return proc, pid_file


def _assert_nothing_left(pid_file: Path) -> None:
    pids = _pids(pid_file)
    assert pids, "the demo recorded no pids"
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if _alive(p)]
    assert not left, f"processes left behind: {left}"


def test_demo_quick_runs_green_with_a_complete_timeline(tmp_path) -> None:
    out_json = tmp_path / "timeline.json"
    proc, pid_file = _start(tmp_path, "--json", str(out_json))
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    data = json.loads(out_json.read_text())
    kinds = [e["kind"] for e in data["events"]]
    assert kinds == ["hard", "failback", "silent", "failback", "leader_kill"]
    for e in data["events"]:
        if e["kind"] in ("hard", "silent"):
            assert set(e["wall_ms"]) >= {"fault_to_all_hosts_flipped", "fault_to_all_hosts_applied_decision"}
            assert len(e["local"]) == 3
            assert {"detect", "forward", "decide", "commit"} <= set(e["coordinated"])
            assert e["orders"]["acked"] > 0
        if e["kind"] == "failback":
            assert "commit" in e["coordinated"] and e["coordinated"]["push_to_ack_ms"]
        if e["kind"] == "leader_kill":
            assert e["wall_ms"]["kill_to_new_leader_commit"] > 0
    # The no-fault figure each event's pause reads against: printed, in the summary, in the JSON.
    assert "with no fault" in output and "no fault" in output.split("all events")[-1]
    assert data["steady_flow_pause_ms"] > 0
    assert data["orders_total"] > 0
    assert data["orders_without_outcome"] == 0
    assert data["orders_with_several_outcomes"] == 0
    assert data["venue_duplicates"] == 0
    assert "stopped" in output
    _assert_nothing_left(pid_file)


@pytest.mark.parametrize("when", ["starting 3 coordinator replicas", "[1] hard failure"])
def test_ctrl_c_stops_everything(tmp_path, when) -> None:
    proc, pid_file = _start(tmp_path)
    seen = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen += line
            if when in line:
                break
            assert time.monotonic() < deadline, seen
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        seen += rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), seen[-3000:]
    assert "Traceback" not in seen, seen[-3000:]
    _assert_nothing_left(pid_file)
