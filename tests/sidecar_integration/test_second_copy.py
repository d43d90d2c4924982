"""A second copy of a running sidecar is refused and leaves the running one serving.

Found from outside: the same config started again by hand unlinked the running sidecar's
strategy socket (every strategy then got NO_PATH while the cluster showed the host healthy),
and a sidecar pointed at another's state file overwrote it. The copy now exits 2 before it
touches anything: the state file's lock is held by the running sidecar.
"""

from __future__ import annotations

import asyncio

import pytest
from failover_client import OutcomeKind, Sidecar

from tests.procs import Proc
from tests.sidecar_integration.harness import GROUP, STRATEGY, standard, system

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


async def test_a_second_copy_exits_2_and_the_running_sidecar_keeps_serving(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), replicas=1)
        sc = s.sidecars["h1"]
        copy = Proc("h1-copy", ["sidecar", "--config", str(sc.config_path)], s.log_dir).start()
        assert copy.proc is not None
        code = await asyncio.to_thread(copy.proc.wait, 20)
        assert code == 2, copy.log()[-2000:]
        assert "in use by another sidecar" in copy.log(), copy.log()[-2000:]
        assert "Traceback" not in copy.log()
        async with await Sidecar.connect(sc.socket, STRATEGY) as strat:
            o = await asyncio.wait_for(strat.send(GROUP, b'{"sym":"ESZ6","qty":1}'), 5)
        assert o.kind == OutcomeKind.ACKED, o
