"""Health collected for a graceful hand-over serves the term handed over, and only that term."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator import leader_health
from coordinator.config import HealthSection
from coordinator.keys import Keys
from coordinator.leader_health import HealthTerms, LeaderHealth
from coordinator.peers import PeerChannels
from coordinator.view import ClusterView
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb

G = "cme-orders"


def _own_state() -> apb.HealthForward:
    host = apb.HostHealth(host_id="h1", full=True, state_seq=1)
    host.paths.append(pb.PathHealth(group=G, path="backup", state=pb.PATH_STATE_UP))
    return apb.HealthForward(replica_id="c2", hosts=[host], complete=True)


def _terms() -> HealthTerms:
    def make() -> LeaderHealth:
        return LeaderHealth(
            replica_id="c2",
            settings=HealthSection(),
            view=ClusterView(Keys("/t/")),
            peers=PeerChannels(),
            local_state=_own_state,
            wake=lambda: None,
            outage_since=lambda: 0.0,
        )

    return HealthTerms(make)


class _TermOver(Exception):
    pass


async def _term_health(terms: HealthTerms) -> LeaderHealth:
    """The health a term starting now begins with (the term's work ends it at once)."""
    seen: list[LeaderHealth] = []

    async def work(_leadership: Any) -> None:
        assert terms.current is not None
        seen.append(terms.current)
        raise _TermOver

    with pytest.raises(_TermOver):
        await terms.term(work)(None)  # type: ignore[arg-type]
    return seen[0]


async def test_a_term_begun_right_after_a_prepare_starts_with_the_prepared_health() -> None:
    terms = _terms()
    assert await terms.prepare(0.05) == 1  # only this replica is a member here
    health = await _term_health(terms)
    assert health.guard_ready and not health.ready  # guard rails yes; the policy after its own collection
    assert health.path_has_up_report(G, "backup")


async def test_prepared_health_is_used_once_and_not_when_the_hand_over_came_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terms = _terms()
    await terms.prepare(0.05)
    assert (await _term_health(terms)).guard_ready
    assert not (await _term_health(terms)).guard_ready  # the next term collects its own
    await terms.prepare(0.05)
    later = leader_health.time.monotonic() + leader_health.PREPARED_FOR_S + 1

    monkeypatch.setattr(leader_health.time, "monotonic", lambda: later)
    assert not (await _term_health(terms)).guard_ready
