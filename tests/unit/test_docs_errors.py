"""Every error the docs show is the error the product prints.

Each ```console block in docs/*.md is a transcript: ``$ command`` lines are run
with bash in a scratch directory (``failover`` is this checkout's CLI, no
FAILOVER_ variables inherited), and the lines after a command are its stderr
(stdout for a command whose output is not an error), compared exactly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import REPO

BLOCK = re.compile(r"```console\n(.*?)```", re.S)


def _examples() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in sorted((REPO / "docs").glob("*.md")):
        for block in BLOCK.findall(doc.read_text()):
            cmd: str | None = None
            expected: list[str] = []
            for line in block.splitlines():
                if line.startswith("$ "):
                    if cmd is not None:
                        found.append((doc.name, cmd, expected))
                    cmd, expected = line[2:], []
                elif cmd is not None:
                    expected.append(line)
            if cmd is not None:
                found.append((doc.name, cmd, expected))
    return found


EXAMPLES = _examples()


def test_the_docs_have_error_examples() -> None:
    assert {doc for doc, _, _ in EXAMPLES} >= {"cli.md", "configuration.md"}
    assert sum(1 for _, _, exp in EXAMPLES if exp) >= 10


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    shim = d / "bin" / "failover"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m failover.cli "$@"\n')
    shim.chmod(0o755)
    return d


def test_every_documented_error_is_the_real_one(scratch: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
    env["PATH"] = f"{scratch / 'bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(REPO)
    mismatches = []
    for doc, cmd, expected in EXAMPLES:
        r = subprocess.run(
            ["bash", "-c", cmd], capture_output=True, text=True, cwd=scratch, env=env, timeout=60
        )
        got = (r.stderr or r.stdout).rstrip("\n").splitlines()
        if expected and r.returncode == 0:
            got = [f"(exit 0) {line}" for line in got]
        if got != expected:
            mismatches.append(f"{doc}: $ {cmd}\n  documented: {expected}\n  real:       {got}")
    assert not mismatches, "\n".join(mismatches)
