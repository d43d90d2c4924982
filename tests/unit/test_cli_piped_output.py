"""Output to a pipe or a file: tables are not cut to 80 columns, and a reader that goes
away ends the command with 141 (rich itself would exit 1, "the operation failed")."""

from __future__ import annotations

import io

import pytest

from failover import cli


class _GonePipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


def test_a_table_to_a_pipe_is_not_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert cli._LazyConsole().get().width == cli.PIPED_WIDTH


def test_rich_output_to_a_reader_gone_exits_141(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", _GonePipe())
    with pytest.raises(SystemExit) as exit_:
        cli._LazyConsole().print("x" * 100)
    assert exit_.value.code == 141
