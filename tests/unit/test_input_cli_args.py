"""Command arguments that could never work are usage errors: one ``error:`` line, exit 2.

Found from outside: ``failover sync "$UNSET_VAR"`` printed ``: no decision yet; 0 of 0
sidecars applied it`` and exited 0; ``failover status -c http://127.0.0.1:42101`` exited 1
with a DNS error; ``failover venue fault --kind slow --delay-ms
4294967296`` (uint32 on the wire) ended in a raw traceback.
"""

from __future__ import annotations

import pytest

from tests.procs import cli


@pytest.mark.parametrize("group", ["", "Bad Name"])
def test_sync_needs_a_group_name(group: str) -> None:
    r = cli("sync", group, "-c", "127.0.0.1:1", timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and "group" in r.stderr, r.stderr


def test_venue_fault_delay_beyond_its_range_is_a_usage_error() -> None:
    r = cli(
        "venue", "fault", "--control", "127.0.0.1:1", "--gateway", "primary",
        "--kind", "slow", "--delay-ms", "4294967296",
    )  # fmt: skip
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "--delay-ms" in r.stderr, r.stderr


def test_venue_event_quantity_beyond_its_range_is_a_usage_error() -> None:
    r = cli(
        "venue", "event", "--control", "127.0.0.1:1", "--kind", "fill",
        "--clordid", "o1", "--qty", "4294967296",
    )  # fmt: skip
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "--qty" in r.stderr, r.stderr


@pytest.mark.parametrize("address", ["http://127.0.0.1:42101", "https://c1.example:7001"])
def test_a_url_for_a_coordinator_is_a_usage_error(address: str) -> None:
    out = cli("status", "-c", address)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert f"bad address {address!r}" in out.stderr and "host:port" in out.stderr, out.stderr
