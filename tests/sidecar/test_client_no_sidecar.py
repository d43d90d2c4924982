"""An order the library could not write to a sidecar that is not there is NO_PATH, not IN_DOUBT.

While a sidecar restarts, its socket is gone: the relay stream never opens, so
nothing reached a venue and the strategy may send again at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from failover_client.api import OutcomeKind, Sidecar


async def test_submit_to_an_absent_sidecar_is_no_path(tmp_path: Path) -> None:
    sc = await Sidecar.connect(str(tmp_path / "gone.sock"), "s1")
    try:
        _, fut = sc.submit("g", b"order")
        async with asyncio.timeout(10):
            outcome = await fut
        assert outcome.kind == OutcomeKind.NO_PATH, (OutcomeKind.name(outcome.kind), outcome.reason)
    finally:
        await sc.close()
