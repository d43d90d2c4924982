"""One home for each helper (issue 11; issue 10, defect 7): child processes and ports in
``failover.procs``, latency statistics in ``failover.stats``, machine info and the JSON
writer in ``failover.machine``. A second copy is how a fix reached one of three
``free_port`` functions and not the others; this test fails when a copy comes back.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from failover import procs

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [
    p
    for base in ("failover", "coordinator", "client", "tests")
    for p in (ROOT / base).rglob("*.py")
    if "failover/v1" not in p.as_posix() and p != Path(__file__).resolve()
]

# (what, pattern, the one module allowed to hold it)
HOMES = [
    ("a port picker", r"^\s*def free_ports?\(", "failover/procs.py"),
    ("a child-process wrapper (subprocess.Popen)", r"subprocess\.Popen\(", "failover/procs.py"),
    ("a latency histogram", r"HdrHistogram\(", "failover/stats.py"),
    ("machine info", r"^\s*def (machine_info|_machine|_cpu_model|cpu_model)\(", "failover/machine.py"),
    ("CPU accounting from /proc", r"int\(fields\[11\]\)|ru_utime", "failover/machine.py"),
]
# Tests that run one CLI command and capture its output are not wrappers (nothing is kept running).
POPEN_CALLERS_OK = {"tests/integration/test_demo.py", "tests/sidecar_integration/test_bad_config.py"}


@pytest.mark.parametrize(("what", "pattern", "home"), HOMES, ids=[h[0] for h in HOMES])
def test_one_home(what: str, pattern: str, home: str) -> None:
    rx = re.compile(pattern, re.M)
    found = sorted(
        rel
        for p in SCANNED
        if rx.search(p.read_text(encoding="utf-8"))
        and (rel := p.relative_to(ROOT).as_posix()) != home
        and not (what.startswith("a child-process") and rel in POPEN_CALLERS_OK)
    )
    assert not found, f"{what} outside {home}: {found}"


def test_port_picker_never_repeats_a_recent_port() -> None:
    seen: set[int] = set()
    for _ in range(200):
        for port in [procs.free_port(), *procs.free_ports(3)]:
            assert port not in seen
            seen.add(port)
