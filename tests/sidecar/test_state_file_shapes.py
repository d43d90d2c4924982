"""A state file of the wrong JSON shape is a clear error (exit 2 at start-up), not a
traceback: found from outside, ``[]`` gave ``AttributeError: 'list' object has no
attribute 'get'`` and ``{"version": 1, "definitions": "x"}`` another AttributeError."""

from __future__ import annotations

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
