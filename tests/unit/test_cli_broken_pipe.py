"""A reader that goes away (`failover watch | head -3`) ends the command quietly, as for any
Unix tool: exit 141 (128 + SIGPIPE), no "error: [Errno 32] Broken pipe"."""

from __future__ import annotations

import pytest

from failover import cli


async def _reader_gone() -> None:
    raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_exits_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.run_async(_reader_gone())
    assert exit_.value.code == 141
    assert "error" not in capsys.readouterr().err
