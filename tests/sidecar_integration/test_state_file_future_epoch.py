"""A state file holding an epoch the cluster never made does not cut the host off.

Found from outside: a sidecar's state file edited (or corrupted) to hold its group at
epoch 0:999999, keeping the old proof, was loaded; the replicas logged that the held
epoch carried "a proof no replica made" and ignored it as restore evidence, but every
decision they had was older than it, so the host ignored them all, operator switches
included (with the file holding a halt, every order NO_PATH for ever). A replica now
tells such a sidecar, in its snapshot, to replace that held epoch with the cluster's
decision (``Snapshot.replace_held``); an epoch a replica did sign still counts as restore
evidence (tests/integration/test_restore_era.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.procs import Proc
from tests.sidecar_integration.harness import GROUP, epoch_of, route_of, standard, system

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.parametrize("edit", ["revision", "era"])
async def test_a_sidecar_holding_an_epoch_no_replica_made_takes_the_clusters_decisions(
    tmp_path, etcd_cluster, prefix, edit: str
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), replicas=1)
        sc = s.sidecars["h1"]
        assert await asyncio.to_thread(sc.proc.stop) == 0
        data = json.loads(sc.state_file.read_text())
        epoch = data["decisions"][GROUP]["epoch"]
        if edit == "revision":
            epoch["revision"] = "999999"
        else:
            epoch["era"] = "5"
        data["decisions"][GROUP]["paths"] = []  # a halt: no order would go anywhere
        sc.state_file.write_text(json.dumps(data))
        await s.drop_channel(f"unix:{sc.socket}")
        sc.proc = Proc("h1", ["sidecar", "--config", str(sc.config_path)], s.log_dir).start()
        st = await s.wait_sidecar(
            "h1",
            lambda st: route_of(st).effective_path == "primary",
            "the cluster's decision, not the file's",
        )
        assert epoch_of(route_of(st)) < (5, 0) and epoch_of(route_of(st))[1] < 999999
        d = await s.switch("backup", "after an edited state file")
        await s.wait_sidecar(
            "h1",
            lambda st: (
                route_of(st).effective_path == "backup"
                and epoch_of(route_of(st)) == (d.epoch.era, d.epoch.revision)
            ),
            "the operator's switch applied",
        )
        assert "no replica made" in sc.proc.log() or "replaced" in sc.proc.log(), sc.proc.log()[-2000:]
