"""``failover era bump`` input: found from outside, ``--expected -5`` (or a number over 64
bits) ended in a traceback (``ValueError: Value out of range``, exit 1), and a blank
``--reason`` bumped the era although the CLI documents it as required."""

from __future__ import annotations

import subprocess

import pytest

from coordinator.request_checks import check_bump_era
from failover.procs import cli_argv
from failover.v1 import admin_pb2 as apb


@pytest.mark.parametrize("value", ["-5", "99999999999999999999999"])
def test_an_expected_era_out_of_range_is_a_usage_error(value: str) -> None:
    out = subprocess.run(
        cli_argv("era", "bump", "--reason", "x", "--expected", value, "-c", "127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "--expected" in out.stderr, out.stderr


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_blank_reason_is_refused_by_the_coordinator(reason: str) -> None:
    problem = check_bump_era(apb.BumpEraRequest(reason=reason, operator="op"))
    assert problem is not None and problem.startswith("reason: required"), problem


def test_a_reason_passes() -> None:
    assert check_bump_era(apb.BumpEraRequest(reason="restored etcd", operator="op")) is None
