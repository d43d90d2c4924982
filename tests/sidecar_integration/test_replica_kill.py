"""The replica a sidecar streams from is SIGKILLed: the sidecar resumes on another, missing nothing."""

from __future__ import annotations

import pytest

from tests.sidecar_integration.harness import (
    GROUP,
    epoch_of,
    route_of,
    standard,
    system,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HOSTS = ("h1", "h2", "h3")


def _holds(st, paths: list[str], epoch: tuple[int, int]) -> bool:
    r = route_of(st)
    return list(r.decision_paths) == paths and epoch_of(r) == epoch and r.effective_path == paths[0]


async def test_sidecar_resumes_on_another_replica_without_missing_a_decision(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, HOSTS)
        st = await s.status("h1")
        streamed_from = st.replica
        victim = next(rid for rid, a in s.coordinator_addrs.items() if a == streamed_from)
        on_victim = [h for h in HOSTS if (await s.status(h)).replica == streamed_from]
        moves_before = {h: int((await s.status(h)).counters["coordinator_moves"]) for h in HOSTS}

        before = await s.switch("backup", "before the kill")
        for h in HOSTS:
            await s.wait_sidecar(
                h,
                lambda st: _holds(st, ["backup", "primary"], epoch_of_d(before)),
                "the decision before the kill",
            )

        s.coordinators[victim].kill()  # SIGKILL (it may be the leader: the switch below waits for a new one)
        during = await s.switch("primary", "right after the kill", timeout=20)
        after = await s.switch("backup", "after the kill", timeout=20)
        assert epoch_of_d(before) < epoch_of_d(during) < epoch_of_d(after)

        for h in HOSTS:
            st = await s.wait_sidecar(
                h,
                lambda st: (
                    _holds(st, ["backup", "primary"], epoch_of_d(after)) and st.control_plane_connected
                ),
                "the latest decision, streaming from a live replica",
            )
            assert st.replica != streamed_from, st.replica
            if h in on_victim:
                assert int(st.counters["coordinator_moves"]) > moves_before[h], st.counters
            # Every decision was applied in order: the one committed while the stream was
            # being re-established too (a decision flip per route change, epochs increasing).
            decided = [(f.to_path, f.epoch.revision) for f in st.flips if f.trigger == "decision"]
            tail = decided[-3:]
            assert tail == [
                ("backup", before.epoch.revision),
                ("primary", during.epoch.revision),
                ("backup", after.epoch.revision),
            ], (h, decided)

        # The survivors see every sidecar acknowledging the latest epoch.
        cs = await s.cluster_status()
        acked = {
            sc.host_id: sc.acked[GROUP].revision
            for rep in cs.replicas
            if rep.reachable
            for sc in rep.sidecars
        }
        assert acked == {h: after.epoch.revision for h in HOSTS}, acked


def epoch_of_d(d) -> tuple[int, int]:
    return (d.epoch.era, d.epoch.revision)
