"""``--coordinators`` addresses are checked as the config files' are: found from outside,
``failover switch ... -c 127.0.0.1:82537`` committed a switch through port 17001 (the
port wrapped modulo 65536), ``:99999`` dialled 34463 and ``:-1`` 65535."""

from __future__ import annotations

import subprocess

import pytest

from failover.procs import cli_argv


@pytest.mark.parametrize(
    "address", ["127.0.0.1:82537", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:0", "nope"]
)
def test_a_bad_coordinator_address_is_a_usage_error(address: str) -> None:
    out = subprocess.run(
        cli_argv("switch", "g1", "primary", "--reason", "x", "-c", f"127.0.0.1:1,{address}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert f"bad address {address!r}" in out.stderr and "Traceback" not in out.stderr, out.stderr
