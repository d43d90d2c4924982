"""A flip's first ack is the first ACKED reply on the path it flipped *to*.

An order written on the old path just before a flip is often acked after it; that
ack used to end the flip's measurement, so the flip kept ``first_ack_us = -1``
("none yet") in ``failover sidecar-status`` and the first-ack metric missed it,
although acks on the new path followed (found from outside: eight operator
switches in a row, every one shown without a first ack).
"""

from __future__ import annotations

from failover_sidecar.flips import FlipLog


def _flip(log: FlipLog, before: str, after: str) -> None:
    log.record("g1", before, after, "decision", None, 0, 0, None)


def test_an_ack_on_the_old_path_does_not_end_the_flips_measurement() -> None:
    log = FlipLog()
    _flip(log, "primary", "backup")
    log.note_ack("g1", "primary")  # an order written before the flip, answered after it
    assert log.entries[-1].first_ack_us == -1
    log.note_ack("g1", "backup")
    assert log.entries[-1].first_ack_us >= 0


def test_only_the_first_ack_on_the_new_path_counts() -> None:
    log = FlipLog()
    _flip(log, "primary", "backup")
    log.note_ack("g1", "backup")
    first = log.entries[-1].first_ack_us
    log.note_ack("g1", "backup")
    assert log.entries[-1].first_ack_us == first


def test_a_newer_flip_is_measured_on_its_own_path() -> None:
    log = FlipLog()
    _flip(log, "primary", "backup")
    _flip(log, "backup", "primary")  # before any ack: the first flip is never completed
    log.note_ack("g1", "backup")
    assert [f.first_ack_us for f in log.entries] == [-1, -1]
    log.note_ack("g1", "primary")
    assert log.entries[0].first_ack_us == -1
    assert log.entries[1].first_ack_us >= 0


def test_groups_are_measured_apart() -> None:
    log = FlipLog()
    log.record("g1", "primary", "backup", "local", "reset", 0, 0, None)
    log.record("g2", "primary", "backup", "local", "reset", 0, 0, None)
    log.note_ack("g2", "backup")
    assert [f.first_ack_us >= 0 for f in log.entries] == [False, True]
