"""A leader whose keepalive replies stop arriving gives its term up at a local
deadline, before etcd could expire its lease (etcd client/v3/lease.go's model).

The test owns its etcd members and SIGSTOPs all of them: every connection stays
open, nothing answers, nothing errors. Only a local deadline can end the term.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster

TTL_S = 4
MARGIN_MS = 1000


async def test_leader_gives_up_at_its_local_deadline_before_the_ttl(own_etcd, prefix) -> None:
    rs = ReplicaSet(
        own_etcd.endpoints,
        prefix,
        n=1,
        election={"lease_ttl_s": TTL_S, "lease_margin_ms": MARGIN_MS},
    )
    await rs.start_all()
    members = range(len(own_etcd.members))
    try:
        leader = await rs.wait_leader()
        stopped = time.monotonic()
        for i in members:
            own_etcd.signal_member(i, signal.SIGSTOP)
        try:
            await wait_for(lambda: not leader.election.is_leader, TTL_S + 4, "the leader to end its term")
            lost_after = time.monotonic() - stopped
            print(f"term ended {lost_after:.2f}s after etcd stopped (TTL {TTL_S}s, margin {MARGIN_MS} ms)")
        finally:
            for i in members:
                own_etcd.signal_member(i, signal.SIGCONT)
        # The last acknowledged renewal was sent at most one interval (TTL/3) before
        # the stop, so the local deadline falls between TTL - margin - TTL/3 and
        # TTL - margin after it; TTL itself is the generous upper bound.
        assert lost_after < TTL_S, f"term ended {lost_after:.2f}s after etcd stopped (TTL {TTL_S}s)"
        assert lost_after > TTL_S - MARGIN_MS / 1000 - TTL_S / 3 - 0.5, f"ended early: {lost_after:.2f}s"
        # etcd is back: the replica campaigns again and leads a new term.
        again = await rs.wait_leader(timeout=20)
        assert again.election.terms == 2
    finally:
        await rs.stop_all()
