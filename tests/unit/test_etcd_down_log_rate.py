"""A replica whose etcd is unreachable says so, but not 20-40 lines a second.

Found from outside: with every etcd member killed, each replica wrote ~1,280 lines in 30 s
(the watch's "broke ... resuming", "etcd member N failed an attempt", retries of writes):
some 150,000 lines an hour per replica. Retry loops' failures are now limited per kind as
outside input is (the first 10, then one per 10 s with the count of those not logged).
"""

from __future__ import annotations

import time
from pathlib import Path

from failover.procs import Child, cli_argv, free_port

RUN_S = 6.0


def test_an_unreachable_etcd_is_not_a_log_flood(tmp_path: Path) -> None:
    argv = cli_argv("coordinator", "--etcd", "127.0.0.1:1", "--listen", f"127.0.0.1:{free_port()}")
    child = Child("c1", argv, tmp_path / "c1.log").start()
    try:
        child.wait_log("broke", timeout=20)
        time.sleep(RUN_S)  # the outage lasts this long: lines are counted over it
    finally:
        child.stop()
    out = child.log()
    lines = out.splitlines()
    assert "Traceback" not in out, out[-2000:]
    assert len(lines) <= 40, f"{len(lines)} lines in about {RUN_S} s:\n" + "\n".join(lines[-20:])
