"""Two sites, one path name: each sidecar resolves the path to its own site's endpoint."""

from __future__ import annotations

import pytest
from failover_client.api import OutcomeKind

from tests.sidecar_integration.harness import (
    OrderFlow,
    gateway,
    route_of,
    system,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


async def test_each_site_connects_to_its_own_endpoint(tmp_path, etcd_cluster, prefix) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        # Venue "va" serves site-a's primary line and everyone's backup (the "default"
        # endpoint); venue "vb" serves site-b's primary line. vb's backup gateway is listed
        # nowhere: nobody may connect to it.
        va = s.start_venue("va")
        vb = s.start_venue("vb")
        await s.wait_venue("va")
        await s.wait_venue("vb")
        endpoints = {
            "primary": {"site-a": va.gateways["primary"], "site-b": vb.gateways["primary"]},
            "backup": {"default": va.gateways["backup"]},
        }
        s.start_coordinators([s.group_def(endpoints)], n=2)
        await s.wait_coordinators()
        s.start_sidecar("a1", site="site-a")
        s.start_sidecar("b1", site="site-b")
        await s.wait_ready(["a1", "b1"])

        ca, cb = await s.counters("va"), await s.counters("vb")
        assert dict(gateway(ca, "primary").logons_by_session) == {"a1": 1}, ca
        assert dict(gateway(cb, "primary").logons_by_session) == {"b1": 1}, cb
        assert dict(gateway(ca, "backup").logons_by_session) == {"a1": 1, "b1": 1}, ca
        assert gateway(cb, "backup").connections_opened == 0, cb
        assert gateway(ca, "primary").connections_opened == 1, ca
        assert gateway(cb, "primary").connections_opened == 1, cb

        for host in ("a1", "b1"):
            st = await s.status(host)
            assert st.site == ("site-a" if host == "a1" else "site-b")
            assert route_of(st).effective_path == "primary"
            flow = OrderFlow(host, s.sidecars[host].socket)
            await flow.open()
            try:
                outcome = await flow.send_one()
            finally:
                await flow.close()
            assert outcome.kind == OutcomeKind.ACKED and outcome.path == "primary", (host, outcome)
        ca, cb = await s.counters("va"), await s.counters("vb")
        assert gateway(ca, "primary").orders == 1 and gateway(cb, "primary").orders == 1, (ca, cb)
        assert ca.orders == 1 and cb.orders == 1 and ca.duplicates == cb.duplicates == 0
