"""A decision's fan-out does not hold up work that became ready with it (ordering, not timing).

When a view change reaches the SyncHub, the sessions are woken from the next loop
iteration on, a batch per iteration: the commit's reply (already ready) runs before
any session, and work that becomes ready mid-fan-out runs before the last session.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from coordinator.config import CoordinatorConfig
from coordinator.fanout import EncodedDecision
from coordinator.health_forwarder import HealthForwarder
from coordinator.keys import Keys
from coordinator.peers import PeerChannels
from coordinator.sync_service import WAKE_BATCH, Session, SyncHub
from coordinator.view import ClusterView
from failover.model.spec import Epoch

SESSIONS = WAKE_BATCH * 4


async def test_reply_and_mid_fanout_work_run_before_the_last_session() -> None:
    view = ClusterView(Keys("/t/"))
    hub = SyncHub(
        CoordinatorConfig(), view, cast(Any, None), HealthForwarder("r1", view, PeerChannels(), bool)
    )
    hub.cache.decisions["g"] = EncodedDecision(Epoch(0, 5), b"", b"", ("a",))
    sessions = [
        Session(sid=i, host_id=f"h{i}", site="default", groups=("g",), acked={}) for i in range(SESSIONS)
    ]
    for s in sessions:
        hub.sessions[s.sid] = s
    order: list[str] = []
    loop = asyncio.get_running_loop()

    async def session(s: Session) -> None:
        await s.wake.wait()
        order.append(f"s{s.sid}")
        if s.sid == 0:  # work that becomes ready once the fan-out has begun
            loop.call_soon(order.append, "mid-fanout")

    waiters = [asyncio.create_task(session(s)) for s in sessions]
    await asyncio.sleep(0)  # every session waits on its wake event
    hub._on_view(view, {"g"})
    loop.call_soon(order.append, "reply")  # the commit's reply, ready with the view change
    assert not any(s.wake.is_set() for s in sessions), "sessions were woken inside the view listener"
    await asyncio.wait_for(asyncio.gather(*waiters), 5.0)

    assert order[0] == "reply"
    assert order.index("mid-fanout") < order.index(f"s{SESSIONS - 1}")
    assert all(s.dirty for s in sessions)
