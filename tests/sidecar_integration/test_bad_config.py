"""`failover sidecar` refuses a bad config: exit code 2, one message naming the field, nothing left behind."""

from __future__ import annotations

import json
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


def _state(definition_paths: list[str], decision_paths: list[str], key: str = GROUP) -> str:
    """A well-formed state file whose contents no coordinator of ours writes."""
    return json.dumps(
        {
            "version": 1,
            "host_id": "h1",
            "definitions": {
                key: {
                    "name": GROUP,
                    "paths": [
                        {"name": n, "endpoint": f"127.0.0.1:{9001 + i}"}
                        for i, n in enumerate(definition_paths)
                    ],
                }
            },
            "decisions": {
                key: {"group": GROUP, "paths": decision_paths, "epoch": {"era": "1", "revision": "5"}}
            },
        }
    )


# name -> the state file found at start (refused, and left as it was)
STATE_FILES = {
    "garbage_state_file": GARBAGE,
    "state_decision_path_twice": _state(["primary", "backup"], ["backup", "backup"]),
    "state_definition_path_twice": _state(["primary", "primary"], ["primary"]),
    "state_group_key_mismatch": _state(["primary", "backup"], ["primary"], key="other"),
}

# name -> (changes to the base config, text every error message must contain)
CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "duplicate_group": ({"groups": [GROUP, GROUP]}, ["groups", f"duplicate group '{GROUP}'"]),
    "bad_coordinator": (
        {"coordinators": ["127.0.0.1:7001", "localhost"]},
        ["coordinators", "bad address 'localhost'"],
    ),
    "bad_coordinator_port": ({"coordinators": ["127.0.0.1:70000"]}, ["coordinators", "port"]),
    # The state file cases name the file (their names end in .state.json) and what is wrong.
    "garbage_state_file": ({}, ["garbage_state_file.state.json", "unreadable state file"]),
    "state_decision_path_twice": (
        {},
        ["unreadable state file", "decision of group", "lists path 'backup' twice"],
    ),
    "state_definition_path_twice": (
        {},
        ["unreadable state file", "definition of group", "path 'primary' twice"],
    ),
    "state_group_key_mismatch": ({}, ["unreadable state file", f"under 'other' holds group '{GROUP}'"]),
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
            if name in STATE_FILES:
                Path(cfg["state_file"]).write_text(STATE_FILES[name])
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
            assert "Exception ignored" not in text, f"{name}: a server left to the collector\n{text}"
            message = " ".join(text.split())  # the console may still wrap long lines
            needles = CASES[name][1] + ([f"{name}.state.json"] if name in STATE_FILES else [])
            for needle in needles:
                assert needle in message, f"{name}: {needle!r} not in the message:\n{text}"
            assert not (sock_dir / f"{name}.sock").exists(), f"{name}: socket file left behind"
        # A refused state file is left as it was (not overwritten).
        for name, text in STATE_FILES.items():
            assert (tmp_path / f"{name}.state.json").read_text() == text, name
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(sock_dir, ignore_errors=True)
