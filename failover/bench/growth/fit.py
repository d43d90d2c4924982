"""Least-squares lines through a growth curve, and why a point was not reached (pure functions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Fit:
    """y = slope * x + intercept over ``points`` points; ``r2`` None when y does not vary."""

    slope: float
    intercept: float
    r2: float | None
    points: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fit_line(xs: list[float], ys: list[float]) -> Fit | None:
    """Ordinary least squares; None with fewer than two distinct x (no line is defined).

    With exactly two points the line passes through both (R² = 1): the slope is
    then a difference, not evidence of linearity; the report says how many points.
    """
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values but {len(ys)} y values")
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = None if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return Fit(slope=slope, intercept=intercept, r2=r2, points=n)


# (category, substrings of the failure message that identify it), checked in order.
_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timeout", ("timed out", "did not finish within")),
    ("streams refused by shedding", ("resource_exhausted", "shed")),
    ("replica lost its lease", ("lease", "not the leader", "not leader", "failed_precondition")),
    ("a process exited", ("exited",)),
    ("streams not ready", ("got their snapshot", "failed while opening")),
    ("decision not delivered", ("did not receive the decision", "did not see route revision")),
    ("run budget spent", ("--max-seconds",)),
)


def classify(reason: str) -> str:
    """A short category for a point's failure message (``other`` when none matches)."""
    low = reason.lower()
    for category, needles in _CATEGORIES:
        if any(n in low for n in needles):
            return category
    return "other"
