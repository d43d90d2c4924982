"""The limit on lines that outside input causes (pure: a fake clock)."""

from __future__ import annotations

import logging

from failover.log_limit import OUTSIDE_INPUT, OutsideInputLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, outside: bool = True, name: str = "x") -> logging.LogRecord:
    r = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)
    if outside:
        r.__dict__.update(OUTSIDE_INPUT)
    return r


def test_a_burst_passes_then_one_announcement_then_one_line_per_interval_with_a_count() -> None:
    clock = Clock()
    f = OutsideInputLimit(burst=3, every_s=10.0, clock=clock)
    passed = [r for r in (_record("bad from %s", i) for i in range(100)) if f.filter(r)]
    assert [r.getMessage() for r in passed[:3]] == ["bad from 0", "bad from 1", "bad from 2"]
    assert len(passed) == 4 and "at most one per 10 s" in passed[3].getMessage()
    clock.now = 10.0
    r = _record("bad from %s", "late")
    assert f.filter(r)
    assert r.getMessage() == "bad from late (96 more like this not logged since the last)"
    assert not f.filter(_record("bad from %s", "again"))  # the bucket is empty again


def test_kinds_are_limited_apart_and_unmarked_lines_always_pass() -> None:
    f = OutsideInputLimit(burst=1, every_s=10.0, clock=Clock())
    assert f.filter(_record("a %s", 1))
    assert f.filter(_record("a %s", 2))  # the announcement
    assert not f.filter(_record("a %s", 3))
    assert f.filter(_record("b %s", 1))  # another template
    assert f.filter(_record("a %s", 4, name="other"))  # another logger
    assert all(f.filter(_record("a %s", i, outside=False)) for i in range(50))


def test_after_a_quiet_spell_the_kind_is_not_limited_any_more() -> None:
    clock = Clock()
    f = OutsideInputLimit(burst=2, every_s=1.0, clock=clock)
    assert sum(f.filter(_record("z")) for _ in range(10)) == 3
    clock.now = 100.0
    lines = [r for r in (_record("z") for _ in range(2)) if f.filter(r)]
    assert [r.getMessage() for r in lines] == ["z (7 more like this not logged since the last)", "z"]
