"""A state file of the wrong JSON shape is a clear error (exit 2 at start-up), not a
traceback: found from outside, ``[]`` gave ``AttributeError: 'list' object has no
attribute 'get'`` and ``{"version": 1, "definitions": "x"}`` another AttributeError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from failover_sidecar import state_file


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '"x"',
        "1",
        "null",
        '{"version": 1, "definitions": "x"}',
        '{"version": 1, "decisions": []}',
        '{"version": 1, "definitions": {"g": "x"}}',
        '{"version": 1, "decisions": {"g": 5}}',
        '{"version": 1, "definitions": {"g": {"paths": "x"}}}',
    ],
)
def test_a_state_file_of_the_wrong_shape_is_a_state_file_error(tmp_path: Path, text: str) -> None:
    p = tmp_path / "h1.state.json"
    p.write_text(text)
    with pytest.raises(state_file.StateFileError, match="state file"):
        state_file.load(p)


def test_an_empty_state_is_loaded(tmp_path: Path) -> None:
    p = tmp_path / "h1.state.json"
    p.write_text('{"version": 1}')
    st = state_file.load(p)
    assert st.definitions == {} and st.decisions == {}


@pytest.mark.parametrize("depth", [1000, 5000])
def test_a_deeply_nested_state_file_is_a_state_file_error(tmp_path: Path, depth: int) -> None:
    """Found from outside: ``RecursionError`` with a traceback and exit 1 (YAML configs were
    already refused cleanly)."""
    p = tmp_path / "h1.state.json"
    p.write_text('{"version": 1, "decisions": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(state_file.StateFileError, match="unreadable state file"):
        state_file.load(p)


@pytest.mark.parametrize(
    ("epoch", "field"),
    [
        ({"era": "0", "revision": "-5"}, "revision"),
        ({"era": str(2**62 + 1), "revision": "5"}, "era"),
        ({"era": "0", "revision": str(2**62 + 1)}, "revision"),
    ],
)
def test_an_epoch_no_replica_accepts_is_refused(tmp_path: Path, epoch: dict[str, str], field: str) -> None:
    """Found from outside: a revision of -5 was loaded, and every replica refused the hello
    that carried it (``hello.held.g1.revision: -5 out of range``) for ever: the host missed
    every decision while the sidecar logged only that no coordinator answered. The state
    file and the replicas' check now share one range."""
    p = tmp_path / "h1.state.json"
    decision = {"group": "g1", "paths": ["primary"], "epoch": epoch}
    p.write_text('{"version": 1, "decisions": {"g1": ' + json.dumps(decision) + "}}")
    with pytest.raises(state_file.StateFileError, match=f"epoch.{field}"):
        state_file.load(p)


def test_a_state_file_another_sidecar_holds_is_refused(tmp_path: Path) -> None:
    """Found from outside: a second sidecar configured with a running one's state file (hx
    with h2's) overwrote it with its own host's state while h2 ran. A sidecar holds a lock
    next to its state file for its whole life; a second one is refused at start (exit 2)."""
    import os

    p = tmp_path / "h2.state.json"
    held = state_file.lock(p)
    try:
        with pytest.raises(state_file.StateFileError, match="in use by another sidecar"):
            state_file.lock(p)
    finally:
        os.close(held)
    os.close(state_file.lock(p))  # free again once the holder is gone
