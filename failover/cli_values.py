"""Option values the parser lets through but a command cannot use, refused as usage errors
(exit 2) rather than surfacing as a coordinator's fault or a traceback.

Numbers: click's ``FloatRange`` compares, and ``nan`` fails no comparison, while ``inf``
(or ``1e308``) overflows a gRPC deadline into an immediate DEADLINE_EXCEEDED. Text: bytes
that are not UTF-8 cannot go into a protobuf string (``require_text_everywhere``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import typer
from typer._click.core import Command, Context, Parameter
from typer._click.types import StringParamType

MAX_SECONDS = 86_400.0
"""A day: longer than any wait a command should make, far below a deadline's overflow."""


def finite_seconds(value: float | None) -> float | None:
    """An option callback: a finite number of seconds, at most ``MAX_SECONDS``."""
    if value is not None and not (math.isfinite(value) and value <= MAX_SECONDS):
        raise typer.BadParameter(f"{value} is not a number of seconds from 0 to {MAX_SECONDS:g}")
    return value


def finite(value: float | None) -> float | None:
    """An option callback: any finite number (the option's own range bounds it)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def not_text(value: str) -> str | None:
    """Why ``value`` is not UTF-8 text, or None. Python passes argv and environment bytes that
    are not UTF-8 through as lone surrogates (``surrogateescape``), which protobuf cannot
    encode: a request built from one failed with a traceback instead of a usage error."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(value[exc.start])
        offset = len(value[: exc.start].encode("utf-8", "surrogateescape"))
        what = f"byte 0x{bad - 0xDC00:02x}" if 0xDC80 <= bad <= 0xDCFF else f"character U+{bad:04X}"
        return f"not UTF-8 text ({what} at offset {offset})"
    return None


def require_text(ctx: Context, param: Parameter, value: Any) -> Any:
    """A parameter callback: a text value (or each of several) must be UTF-8 (click's error
    names the option, and the environment variable when the value came from one)."""
    for item in value if isinstance(value, list | tuple) else (value,):
        problem = not_text(item) if isinstance(item, str) else None
        if problem is not None:
            raise typer.BadParameter(problem, ctx=ctx, param=param)
    return value


def require_text_everywhere(command: Command) -> None:
    """Chain :func:`require_text` before every text (``str``) parameter's own callback, in
    ``command`` and every subcommand: one check for every value the CLI may send. Paths
    are not text (a file name may be any bytes) and are left alone."""
    for param in command.params:
        if isinstance(param.type, StringParamType):
            param.callback = _chained(param.callback)
    for sub in getattr(command, "commands", {}).values():  # a group's subcommands
        require_text_everywhere(sub)


def _chained(own: Callable[[Context, Parameter, Any], Any] | None) -> Callable[..., Any]:
    def callback(ctx: Context, param: Parameter, value: Any) -> Any:
        value = require_text(ctx, param, value)
        return own(ctx, param, value) if own is not None else value

    return callback
