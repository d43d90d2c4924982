"""SIGTERM gives every message already at the venue its real outcome before the strategy's
connection closes.

Found from outside: a strategy sending every 1 ms through the framed socket, the sidecar
SIGTERMed; 3-10 messages got no outcome at all, although the venue's acks of most of them
had reached the sidecar a millisecond before it closed the connection (over gRPC, the
library resolved such a message IN_DOUBT "stream to the sidecar broke"). The stop closed
the strategies' connections first and stopped the venue sessions after. Here the venue
answers 150 ms late, so every message is at the venue, unanswered, when SIGTERM comes.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from failover_client import FramedRelay, OutcomeKind, Sidecar

from tests.sidecar_integration.harness import GROUP, STRATEGY, gateway, standard, system, until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

N = 20
DELAY_MS = 150
BOUND_S = 10.0  # a broken mechanism never answers; this only bounds the wait
# The slow replies stay well inside the silence limit (750 ms), and no order probe.
DATA_PLANE = {"heartbeat_interval_ms": 250, "order_probe": False}


async def _one_sidecar(s, data_plane: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    """One venue, one replica, sidecar h1 with its framed socket; the socket's path."""
    framed = str(s.sock_dir / "h1.framed.sock")
    await standard(
        s,
        ("h1",),
        replicas=1,
        sidecar={
            "listen": {"socket": str(s.sock_dir / "h1.sock"), "framed_socket": framed},
            "data_plane": data_plane,
        },
    )
    return framed


async def _until_at_venue(s, orders: int) -> None:  # type: ignore[no-untyped-def]
    async def probe() -> int:
        return gateway(await s.counters(), "primary").orders

    await until(probe, lambda n: n >= orders, "the messages booked by the venue", timeout=BOUND_S)


@pytest.mark.parametrize("transport", ["framed", "grpc"])
async def test_sigterm_delivers_the_acks_of_messages_already_at_the_venue(
    tmp_path, etcd_cluster, prefix, transport: str
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        framed = str(s.sock_dir / "h1.framed.sock")
        sock = str(s.sock_dir / "h1.sock")
        await standard(
            s,
            ("h1",),
            replicas=1,
            sidecar={
                "listen": {"socket": sock, "framed_socket": framed},
                "data_plane": DATA_PLANE,
            },
        )
        client = await (
            FramedRelay.connect(framed, STRATEGY)
            if transport == "framed"
            else Sidecar.connect(sock, STRATEGY)
        )
        try:
            warm = await asyncio.wait_for(client.send(GROUP, b'{"warm":1}'), BOUND_S)
            assert warm.kind == OutcomeKind.ACKED and warm.path == "primary", warm
            before = gateway(await s.counters(), "primary").orders
            await s.fault("primary", "slow", delay_ms=DELAY_MS)
            futs = [client.submit(GROUP, f'{{"n":{i}}}'.encode())[1] for i in range(N)]

            await _until_at_venue(s, before + N)
            s.sidecars["h1"].proc.signal(signal.SIGTERM)
            outcomes = [await asyncio.wait_for(f, BOUND_S) for f in futs]
        finally:
            await client.close()
        kinds = [OutcomeKind.name(o.kind) for o in outcomes]
        assert kinds == ["ACKED"] * N, [(k, o.reason) for k, o in zip(kinds, outcomes, strict=True)]
        assert all(o.venue_order_id for o in outcomes), outcomes
        proc = s.sidecars["h1"].proc
        assert proc.proc is not None
        assert await asyncio.to_thread(proc.proc.wait, BOUND_S) == 0, proc.tail()


async def test_messages_sent_while_the_sidecar_stops_are_refused_not_lost(
    tmp_path, etcd_cluster, prefix
) -> None:
    """A message that arrives after the stop began gets REJECTED (never written), not silence."""
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        framed = await _one_sidecar(s, DATA_PLANE)
        async with await FramedRelay.connect(framed, STRATEGY) as fr:
            warm = await asyncio.wait_for(fr.send(GROUP, b'{"warm":1}'), BOUND_S)
            assert warm.kind == OutcomeKind.ACKED, warm
            await s.fault("primary", "slow", delay_ms=DELAY_MS)
            before = gateway(await s.counters(), "primary").orders
            first = fr.submit(GROUP, b'{"n":0}')[1]
            await _until_at_venue(s, before + 1)
            s.sidecars["h1"].proc.signal(signal.SIGTERM)
            await asyncio.to_thread(s.sidecars["h1"].proc.wait_log, "new messages refused", BOUND_S)
            late = fr.submit(GROUP, b'{"n":1}')[1]
            got_first = await asyncio.wait_for(first, BOUND_S)
            got_late = await asyncio.wait_for(late, BOUND_S)
        assert got_first.kind == OutcomeKind.ACKED, got_first
        assert got_late.kind in (OutcomeKind.REJECTED, OutcomeKind.NO_PATH), got_late
        assert "stopping" in got_late.reason, got_late


async def test_a_line_that_goes_silent_during_the_stop_has_its_messages_asked_about(
    tmp_path, etcd_cluster, prefix
) -> None:
    """The stop waits for replies; a line that goes silent meanwhile is a failure like any
    other: what it carried is asked about over the backup (the venue has it: ACKED), not
    called IN_DOUBT "closed by the sidecar's stop" (found from outside, 1-7 messages per
    try; the venue had all of them)."""
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        # silent after 150 ms: well inside the stop's 1 s wait for replies
        framed = await _one_sidecar(s, {"heartbeat_interval_ms": 50, "order_probe": False})
        async with await FramedRelay.connect(framed, STRATEGY) as fr:
            warm = await asyncio.wait_for(fr.send(GROUP, b'{"warm":1}'), BOUND_S)
            assert warm.kind == OutcomeKind.ACKED, warm
            before = gateway(await s.counters(), "primary").orders
            await s.fault("primary", "slow", delay_ms=3000)  # booked, answered too late
            futs = [fr.submit(GROUP, f'{{"n":{i}}}'.encode())[1] for i in range(5)]
            await _until_at_venue(s, before + 5)
            s.sidecars["h1"].proc.signal(signal.SIGTERM)
            outcomes = [await asyncio.wait_for(f, BOUND_S) for f in futs]
        kinds = [OutcomeKind.name(o.kind) for o in outcomes]
        assert kinds == ["ACKED"] * 5, [(k, o.reason) for k, o in zip(kinds, outcomes, strict=True)]
        assert all("the venue has it" in o.reason for o in outcomes), [o.reason for o in outcomes]
