"""The short chaos soak CI runs: `failover chaos` exactly as an operator would start it.

Random faults (fixed seed: a failure here replays with the printed command) while
strategies send orders; the command exits non-zero on any invariant violation or a
recovery over its bound. The 10-minute run is in docs/reliability.md.
"""

from __future__ import annotations

import pytest

from tests.procs import cli

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

SOAK = "90s"
BOUND_S = 400  # the soak, plus starting and stopping its cluster on 2 busy cores


def test_short_chaos_soak_holds_every_invariant() -> None:
    r = cli("chaos", "--duration", SOAK, "--seed", "7", timeout=BOUND_S)
    print(r.stdout[-3000:])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "invariants: all held" in r.stdout
