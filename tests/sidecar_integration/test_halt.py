"""The operator's kill switch: `failover halt` stops every sidecar sending, `failover resume` restores it."""

from __future__ import annotations

import pytest
from failover_client.api import Outcome, OutcomeKind

from tests.sidecar_integration.harness import (
    GROUP,
    OrderFlow,
    System,
    epoch_of,
    route_of,
    standard,
    system,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HOSTS = ("h1", "h2", "h3")


async def _send_each(s: System, n: int = 3) -> dict[str, list[Outcome]]:
    outcomes = {}
    for h in HOSTS:
        flow = OrderFlow(h, s.sidecars[h].socket)
        await flow.open()
        try:
            outcomes[h] = [await flow.send_one() for _ in range(n)]
        finally:
            await flow.close()
    return outcomes


async def test_halt_stops_every_sidecar_and_resume_restores_routing(tmp_path, etcd_cluster, prefix) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, HOSTS)
        before = epoch_of(route_of(await s.status("h1")))

        await s.operator("halt", GROUP, "--reason", "x", "--operator", "t")
        for h in HOSTS:
            st = await s.wait_sidecar(h, lambda st: route_of(st).halted, "the halt")
            r = route_of(st)
            assert r.effective_path == "" and list(r.decision_paths) == [] and epoch_of(r) > before, r
        for h, outs in (await _send_each(s)).items():
            for o in outs:
                assert o.kind == OutcomeKind.NO_PATH and o.path == "", (h, o)
                assert "halt" in o.reason, o.reason
        c = await s.counters()
        assert c.orders == 0, c

        await s.operator("resume", GROUP, "--operator", "t")
        for h in HOSTS:
            st = await s.wait_route(h, "primary")
            r = route_of(st)
            assert not r.halted and list(r.decision_paths) == ["primary", "backup"], r
        for h, outs in (await _send_each(s)).items():
            assert [(o.kind, o.path) for o in outs] == [(OutcomeKind.ACKED, "primary")] * 3, (h, outs)
        c = await s.counters()
        assert c.orders == 3 * len(HOSTS) and c.duplicates == 0, c
