"""Corked writes: a burst of orders reaches each venue line in one system call, in order."""

from __future__ import annotations

from typing import Any

from failover_sidecar.path import corked
from failover_sidecar.status import PathState

from failover.venue.server import Venue
from failover.wire import protocol as p

from .conftest import MakeSession


async def test_a_corked_burst_is_one_write_per_line_in_order(venue: Venue, make_session: MakeSession) -> None:
    primary, prec = await make_session("primary", heartbeat_interval_ms=1000, silent_after=3)
    await prec.next_status(PathState.UP)
    link: Any = primary._link
    writes: list[bytes] = []
    real_write = link.transport.write

    def counting(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    link.transport.write = counting
    try:
        with corked():
            for i in range(5):
                assert primary.send(p.new_order(f"h-c-{i}", "x"))
            assert writes == []  # nothing leaves until the block ends
        assert len(writes) == 1
        acked = [str((await prec.next_message(p.MsgType.ACK)).get("clordid")) for _ in range(5)]
        assert acked == [f"h-c-{i}" for i in range(5)]  # in order, each once
        assert primary.send(p.new_order("h-c-after", "x"))  # uncorked: written at once
        assert len(writes) == 2
        await prec.next_message(p.MsgType.ACK)
        assert prec.downs() == []
    finally:
        link.transport.write = real_write
