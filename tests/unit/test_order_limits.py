"""Per-strategy limits of the order path (no network: the agent is built but not started)."""

from __future__ import annotations

import pytest
from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig
from failover_sidecar.orders import OrderPath, RelayError

from failover.v1 import sidecar_pb2 as spb


def make(tmp_path, **orders: int) -> OrderPath:
    """An order path of host h1 (group g, strategy s1) with these ``orders`` settings."""
    cfg = SidecarConfig(
        host_id="h1",
        groups=["g"],
        coordinators=["127.0.0.1:1"],
        state_file=str(tmp_path / "s.json"),
        strategies=["s1"],
        orders=orders,
    )
    return OrderPath(Agent(cfg))


def msg(i: int, group: str = "g") -> spb.RelayMessage:
    return spb.RelayMessage(group=group, client_msg_id=i, kind=spb.MESSAGE_KIND_NEW_ORDER, payload=b"x")


async def test_rate_limit_refuses_beyond_the_bucket(tmp_path) -> None:
    op = make(tmp_path, rate_limit_per_s=5)
    for i in range(1, 6):
        op.submit("s1", msg(i))
    with pytest.raises(RelayError, match="rate limit"):
        op.submit("s1", msg(6))


async def test_bad_messages_are_refused_before_the_ledger(tmp_path) -> None:
    op = make(tmp_path, max_outstanding=2)
    with pytest.raises(RelayError, match="unknown group"):
        op.submit("s1", msg(1, group="other"))
    with pytest.raises(RelayError, match="client_msg_id"):
        op.submit("s1", msg(0))
    op.submit("s1", msg(1))
    with pytest.raises(RelayError, match="already submitted"):
        op.submit("s1", msg(1))
    op.submit("s1", msg(2))
    with pytest.raises(RelayError, match="without an outcome"):
        op.submit("s1", msg(3))
    assert op.ledger.unresolved() == 2
