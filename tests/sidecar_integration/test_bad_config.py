"""`failover sidecar` refuses a bad config: exit code 2, one message naming the field, nothing left behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.procs import REPO
from tests.sidecar_integration.harness import GROUP, env_without_failover, short_dir


def _base(tmp: Path, sock_dir: Path, name: str) -> dict[str, Any]:
    return {
        "host_id": "h1",
        "groups": [GROUP],
        "coordinators": ["127.0.0.1:7001"],
        "state_file": str(tmp / f"{name}.state.json"),
        "strategies": ["s1"],
        "listen": {"socket": str(sock_dir / f"{name}.sock")},
    }


BOOTSTRAP = {
    "name": GROUP,
    "paths": [
        {"name": "primary", "endpoints": {"default": "127.0.0.1:9001"}},
        {"name": "backup", "endpoints": {"default": "127.0.0.1:9002"}},
    ],
}

GARBAGE = '{"version": 1, "definitions": {'  # a torn JSON file

# name -> (changes to the base config, text every error message must contain)
CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "duplicate_group": ({"groups": [GROUP, GROUP]}, ["groups", f"duplicate group '{GROUP}'"]),
    "bad_coordinator": (
        {"coordinators": ["127.0.0.1:7001", "localhost"]},
        ["coordinators", "bad address 'localhost'"],
    ),
    "bad_coordinator_port": ({"coordinators": ["127.0.0.1:70000"]}, ["coordinators", "port"]),
    "garbage_state_file": ({}, ["state_file", "unreadable state file"]),
    "unknown_override_path": (
        {"bootstrap": [BOOTSTRAP], "overrides": {GROUP: {"warmth": {"nosuch": "cold"}}}},
        [f"overrides.{GROUP}.warmth.nosuch", "unknown path"],
    ),
    "unknown_field": (
        {"hearbeat_interval_ms": 5},
        ["hearbeat_interval_ms", "Extra inputs are not permitted"],
    ),
    "unknown_nested_field": (
        {"data_plane": {"heartbeat_ms": 5}},
        ["data_plane.heartbeat_ms", "Extra inputs are not permitted"],
    ),
}


def test_bad_configs_are_refused_naming_the_field(tmp_path) -> None:
    sock_dir = short_dir("badcfg")
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, (changes, _) in CASES.items():
            cfg = {**_base(tmp_path, sock_dir, name), **changes}
            if name == "garbage_state_file":
                Path(cfg["state_file"]).write_text(GARBAGE)
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            procs[name] = subprocess.Popen(  # all at once: each is a cold Python start
                [sys.executable, "-m", "failover.cli", "sidecar", "--config", str(path)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**env_without_failover(), "COLUMNS": "500"},
            )
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=30)
            text = out + err
            assert proc.returncode == 2, f"{name}: exit code {proc.returncode}\n{text}"
            assert "Traceback" not in text, f"{name}: traceback\n{text}"
            message = " ".join(text.split())  # the console may still wrap long lines
            for needle in CASES[name][1]:
                assert needle in message, f"{name}: {needle!r} not in the message:\n{text}"
            assert not (sock_dir / f"{name}.sock").exists(), f"{name}: socket file left behind"
        # The garbage state file is left as it was (refused, not overwritten).
        assert (tmp_path / "garbage_state_file.state.json").read_text() == GARBAGE
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(sock_dir, ignore_errors=True)
