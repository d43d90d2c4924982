"""Whether a decision a sidecar holds proves that etcd was put back to an older copy.

A replica started (or restarted) after a restore has no applied revision to
compare with, so the mirror's signs cannot fire. The sidecars remember: each
hello carries, per group, the epoch of the newest decision the host applied.
That decision was committed before the hello was sent, so in one etcd history a
linearizable read made after the hello must show

* an era at least the decision's era (the era key only grows), and
* in that same era, the group's route key with a mod revision at least the
  decision's revision: every decision writes the route key, nothing deletes it,
  and a later write only raises its mod revision.

A held epoch in an era below etcd's proves nothing (an era bump since: the
bump exists to leave those behind).
"""

from __future__ import annotations

from dataclasses import dataclass

from failover.model.spec import Epoch


@dataclass(frozen=True)
class EtcdNow:
    """What a linearizable read made after the hello showed."""

    era: int
    route_mod_revision: int | None  # the group's route key; None: no such key


def worth_checking(held: Epoch, view_epoch: Epoch | None, view_era: int) -> bool:
    """Only a held epoch ahead of this replica's view needs a read of etcd.

    An up-to-date view already holds every committed decision, so in normal
    operation (sidecars resuming from what replicas sent them) nothing is read.
    """
    if held.revision <= 0 or held.era < view_era:
        return False
    return view_epoch is None or held > view_epoch


def held_epoch_evidence(group: str, held: Epoch, now: EtcdNow) -> str:
    """One line of evidence that etcd went back, or "" when ``held`` fits etcd's history."""
    if held.revision <= 0 or held.era < now.era:
        return ""
    if held.era > now.era:
        return f"{group} at epoch {held}, above etcd's era {now.era}"
    if now.route_mod_revision is None:
        return f"{group} at epoch {held}, and etcd has no decision of {group}"
    if now.route_mod_revision < held.revision:
        return (
            f"{group} at epoch {held}, and etcd's decision of {group} is at revision {now.route_mod_revision}"
        )
    return ""
