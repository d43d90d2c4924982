"""A child whose parent died before the kernel was told to kill it with its parent does not run.

``PR_SET_PDEATHSIG`` is set in the child after the fork (by ``setpriv``, just before it
execs the command). A parent SIGKILLed between the fork and that call leaves a child the
kernel will never signal: the dry run of the session that added this test saw
`failover demo`, killed just as it started its coordinators, leave one running. The
child now checks, after the signal is armed, that its parent is still the process that
started it, and exits at once if not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from failover.procs import Child, _dying_with_us

pytestmark = pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")


def test_a_child_started_by_us_runs(tmp_path: Path) -> None:
    out = tmp_path / "ran"
    child = Child("c", [sys.executable, "-c", f"open({str(out)!r}, 'w').write('yes')"], tmp_path / "c.log")
    child.start()
    assert child.proc is not None and child.proc.wait(timeout=30) == 0
    assert out.read_text() == "yes"


def test_a_child_whose_parent_is_not_the_one_that_armed_it_exits_without_running(tmp_path: Path) -> None:
    """The argv is built here (this process is the parent it expects) and started by
    another process: as if this one had died between the fork and the prctl, and the
    child had been handed to someone else."""
    out = tmp_path / "ran"
    argv = _dying_with_us([sys.executable, "-c", f"open({str(out)!r}, 'w').write('yes')"])
    other = subprocess.run(
        [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))", *argv],
        timeout=30,
    )
    assert not out.exists(), "the command ran although its parent was not the process that armed it"
    assert other.returncode != 0
