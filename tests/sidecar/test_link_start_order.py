"""Sidecars that list the replicas in the same order do not all start on the first one.

A fleet configured with one ``coordinators`` list (as a DaemonSet's ConfigMap
gives every node) used to put every stream on replica 0 until it restarted.
"""

from __future__ import annotations

from collections import Counter

from failover_sidecar.stream import CoordinatorLink

from failover.v1 import sync_pb2

REPLICAS = ["c-0:7001", "c-1:7001", "c-2:7001"]


def _link(host_id: str) -> CoordinatorLink:
    return CoordinatorLink(
        host_id=host_id,
        site="default",
        groups=["g"],
        addresses=list(REPLICAS),
        held=dict,
        on_definition=lambda g: None,
        on_decision=lambda d, s: (0, 0),
        full_health=sync_pb2.HealthReport,
    )


def _order(link: CoordinatorLink) -> list[str]:
    return list(link._addresses)


def test_hosts_start_spread_over_the_replicas() -> None:
    first = Counter(_order(_link(f"trading-{n}"))[0] for n in range(300))
    assert set(first) == set(REPLICAS)
    assert all(60 <= c <= 140 for c in first.values()), first


def test_a_host_keeps_its_order_and_every_replica_in_sequence() -> None:
    order = _order(_link("trading-a"))
    assert order == _order(_link("trading-a"))  # the same host starts on the same replica after a restart
    k = REPLICAS.index(order[0])
    assert order == REPLICAS[k:] + REPLICAS[:k]  # a rotation: the configured sequence after the first
