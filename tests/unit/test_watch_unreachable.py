"""`failover watch --count N` whose last change is "no coordinator answered" exits 1: a
script that runs it once must not read an outage as a clean answer."""

from __future__ import annotations

import json

from failover.procs import free_port
from tests.procs import cli


def test_watch_count_with_no_coordinator_reachable_exits_1() -> None:
    closed = f"127.0.0.1:{free_port()}"
    r = cli("watch", "--json", "--count", "1", "--interval-ms", "100", "-c", closed, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "error" in json.loads(r.stdout.splitlines()[0])
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
