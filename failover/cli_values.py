"""Option values the range checks let through: click's ``FloatRange`` compares, and ``nan``
fails no comparison, while ``inf`` (or ``1e308``) overflows a gRPC deadline into an
immediate DEADLINE_EXCEEDED. Both would surface as a coordinator's fault, not a typo."""

from __future__ import annotations

import math

import typer

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
