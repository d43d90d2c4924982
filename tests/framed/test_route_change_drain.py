"""A route change away from a line that is still up does not hold the group for the reply timeout.

Found from outside: a proxy dropped a few venue acks on the primary (the line stayed up,
heartbeats answered), then an operator switched the group to the backup. Orders are
written to a new path only once every earlier one has an outcome (make-before-break), and
the unanswered order had none until ``orders.reply_timeout_ms`` (5 s): every order sent
meanwhile got ``NO_PATH`` ("no usable path within 500 ms", 1,874 of 4,500), the first ack
on the backup came 4.25 s after the flip; with ``reply_timeout_ms: 0`` the group never
moved again. Now what the old path still owes ``orders.route_change_drain_ms`` (100 ms)
after the route left it is asked about over the new path, and the queue moves on.
"""

from __future__ import annotations

import asyncio

import pytest
from failover_client.api import OutcomeKind
from failover_client.framed import FramedRelay

from failover.v1 import types_pb2 as pb
from tests.sidecar_integration.harness import GROUP, STRATEGY

from .conftest import FramedRig, swallow_venue_acks

ACKED, NO_PATH = OutcomeKind.ACKED, OutcomeKind.NO_PATH


@pytest.mark.parametrize(
    "rig",
    [{}, {"orders": {"reply_timeout_ms": 0}}],
    indirect=True,
    ids=["default-reply-timeout", "no-reply-timeout"],
)
async def test_an_unanswered_order_on_the_old_path_does_not_hold_the_group_after_a_switch(
    rig: FramedRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = rig.app.agent
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        assert (await fr.send(GROUP, "x")).kind == ACKED
        swallow_venue_acks(monkeypatch)
        _, lost = fr.submit(GROUP, "lost ack")
        await asyncio.sleep(0.05)  # noqa: ASYNC110 - the order is written and its ack swallowed
        monkeypatch.undo()
        agent.on_decision(
            pb.Decision(
                group=GROUP, paths=["backup", "primary"], epoch=pb.Epoch(era=0, revision=2), reason="op"
            ),
            [],
        )
        t0 = asyncio.get_running_loop().time()
        async with asyncio.timeout(3):
            after = await fr.send(GROUP, "after the switch")
        took = asyncio.get_running_loop().time() - t0
        assert after.kind == ACKED and after.path == "backup", after
        assert took < 1.0, took  # ~0.1 s expected (the drain); a mechanism bound
        async with asyncio.timeout(3):
            o = await lost
        assert o.kind == ACKED and o.path == "primary" and "asked over backup" in o.reason, o
