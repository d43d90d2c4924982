"""Operator controls as every decision rule reads them: one rule for pin against drain.

Drain is the safety control (take a line out of service), so it wins: a
drained path is never chosen, and a pin on a drained path holds nothing.
The operator requests refuse to create that state (draining a pinned path
needs ``--force``, which clears the pin), but it can still be read from etcd,
and the policy and the reconciler must then agree, or they would undo each
other's decision on every pass. Both call :func:`effective`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from failover.model.spec import ControlsSpec


@dataclass(frozen=True)
class Effective:
    drained: frozenset[str]
    pinned: str | None  # the path the group is held to, or None


def effective(controls: ControlsSpec | None, paths: Sequence[str]) -> Effective:
    """What the controls mean for a group with ``paths``: a pin counts only on a known, undrained path."""
    if controls is None:
        return Effective(frozenset(), None)
    drained = frozenset(controls.drained)
    pin = controls.pinned
    held = pin if pin is not None and pin in paths and pin not in drained else None
    return Effective(drained, held)
