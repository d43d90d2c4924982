"""``--log-level`` and ``--log-format`` of every command that serves: one spelling, checked
by the CLI framework before anything starts (a bad value is a one-line usage error)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    auto = "auto"
    console = "console"
    json = "json"


LogLevelOpt = Annotated[
    LogLevel, typer.Option("--log-level", case_sensitive=False, help="Lowest level logged.")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format", case_sensitive=False, help="auto (JSON unless stderr is a terminal), console or json"
    ),
]
