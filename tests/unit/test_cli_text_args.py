"""Bytes that are not UTF-8 in an argument or a ``FAILOVER_`` variable: one line naming the
option, exit 2, before any connection (no cluster needed).

Python hands such bytes to the CLI as lone surrogates (``surrogateescape``); protobuf
cannot encode them, and building the request ended in a ``UnicodeEncodeError`` traceback
(exit 1) from ``SwitchRequest``/``SetControlRequest``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.procs import REPO

# No coordinator listens there: a command that got as far as connecting would say so.
_NOWHERE = b"127.0.0.1:1"


def _run(*args: bytes, env: dict[bytes, bytes] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with raw bytes in argv and the environment, as a shell passes ``$'\\xff'``."""
    environ = {**os.environb, **(env or {})}
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"failover.cli", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=30,
        cwd=REPO,
        env=environ,
    )


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([b"switch", b"cme-orders", b"primary", b"--reason", b"r\xff"], "--reason"),
        ([b"switch", b"cme-orders", b"primary", b"--reason", b"r", b"--operator", b"\xfeop"], "--operator"),
        ([b"switch", b"cme\xff", b"primary", b"--reason", b"r"], "'group'"),
        ([b"drain", b"cme-orders", b"primary", b"--reason", b"\xff"], "--reason"),
        ([b"pin", b"cme-orders", b"prim\xc3"], "'path'"),
        ([b"status", b"--group", b"\xff"], "--group"),
        ([b"history", b"g\xff"], "'group'"),
        ([b"sync", b"g\xff"], "'group'"),
        ([b"era", b"bump", b"--reason", b"\xff"], "--reason"),
    ],
    ids=["switch-reason", "switch-operator", "switch-group", "drain-reason", "pin-path", "status-group",
         "history-group", "sync-group", "era-reason"],
)  # fmt: skip
def test_an_argument_that_is_not_utf8_is_one_line_naming_it(args: list[bytes], named: str) -> None:
    line = _one_line_error(_run(*args, b"-c", _NOWHERE))
    assert named in line and "not UTF-8" in line, line


@pytest.mark.parametrize(
    ("args", "var", "named"),
    [
        ([b"pause", b"cme-orders", b"-c", _NOWHERE], b"FAILOVER_OPERATOR", "--operator"),
        ([b"status"], b"FAILOVER_COORDINATORS", "--coordinators"),
    ],
    ids=["operator", "coordinators"],
)
def test_a_variable_that_is_not_utf8_is_one_line_naming_it(args: list[bytes], var: bytes, named: str) -> None:
    line = _one_line_error(_run(*args, env={var: b"\xfe"}))
    assert named in line and var.decode() in line and "not UTF-8" in line, line


def test_the_offending_byte_and_its_offset_are_named() -> None:
    line = _one_line_error(_run(b"switch", b"g", b"p", b"--reason", b"caf\xc3", b"-c", _NOWHERE))
    assert "byte 0xc3 at offset 3" in line, line


def test_a_file_name_that_is_not_utf8_is_still_a_file_name(tmp_path: object) -> None:
    """Paths are bytes on POSIX: a ``--config`` that is not UTF-8 is looked up, not refused."""
    r = _run(b"coordinator", b"--config", b"/nonexistent/\xff.yaml")
    line = _one_line_error(r)
    assert "No such file" in line and "not UTF-8" not in line, line
