"""When a follower may end a dead leader's term early: only on refused connections.

A refused connection means the leader's host answered and no process listens on
its port: the leader is gone, and waiting for its lease to expire only delays
the next term. A timeout or an unreachable address proves nothing (a stopped
process, a partition, a slow host): those never count, so replicas that merely
cannot reach each other never take turns revoking each other's leases. Revoking
the lease of a leader that is alive after all costs a term, not safety: every
write is fenced by the election key's create revision.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Probe(enum.Enum):
    ACCEPTED = "accepted"  # something listens on the leader's port
    REFUSED = "refused"  # the host answered: nothing listens there
    NO_ANSWER = "no_answer"  # timeout, unreachable, any other error: proves nothing


@dataclass
class DeadLeader:
    """Consecutive refusals for one leader term; ``needed`` of them in a row say it is dead."""

    needed: int = 2
    token: int = 0  # the term (election key create revision) being judged
    refusals: int = 0

    def observe(self, token: int, probe: Probe) -> bool:
        """Record one probe of term ``token``'s address; True when its lease should be revoked."""
        if token != self.token:
            self.token, self.refusals = token, 0
        self.refusals = self.refusals + 1 if probe is Probe.REFUSED else 0
        return self.refusals >= self.needed
