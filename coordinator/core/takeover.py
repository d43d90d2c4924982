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
from dataclasses import dataclass, field


class Probe(enum.Enum):
    ACCEPTED = "accepted"  # something listens on the leader's port
    REFUSED = "refused"  # the host answered: nothing listens there
    NO_ANSWER = "no_answer"  # timeout, unreachable, any other error: proves nothing


@dataclass
class DeadLeader:
    """Consecutive refusals for one leader term; ``needed`` of them in a row say it is dead.

    A replica whose lease this follower revoked and that then leads again is alive
    (it campaigned and won): its port refuses this follower for another reason (a
    firewall's REJECT), and revoking it again would only hand the term back and forth.
    Its refusals do not count until its port has accepted this follower once.
    """

    needed: int = 2
    token: int = 0  # the term (election key create revision) being judged
    refusals: int = 0
    revoked: dict[str, int] = field(default_factory=dict)  # replica id -> the term revoked

    def observe(self, token: int, probe: Probe, replica_id: str = "") -> bool:
        """Record one probe of term ``token``'s address (led by ``replica_id``); True when its
        lease should be revoked (the caller revokes it)."""
        if token != self.token:
            self.token, self.refusals = token, 0
        if probe is Probe.ACCEPTED:
            self.revoked.pop(replica_id, None)
        if self.revoked.get(replica_id, token) < token:
            self.refusals = 0
            return False
        self.refusals = self.refusals + 1 if probe is Probe.REFUSED else 0
        if self.refusals < self.needed:
            return False
        self.revoked[replica_id] = token
        return True
