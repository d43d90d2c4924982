"""The strategy API on a real cluster: outcomes, venue events after a flip, in-doubt resolution, bad input."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from failover_client import OutcomeKind, Sidecar, SyncSidecar

from failover.demo.cluster import wait_until
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb
from failover.v1 import venue_pb2, venue_pb2_grpc
from tests.integration.test_policy_cluster import G, cluster, effective
from tests.procs import cli

pytestmark = [pytest.mark.slow]


async def test_fill_after_flip_reaches_its_strategy_and_in_doubt_resolves() -> None:
    async with cluster(quick=True) as demo:
        assert demo.control is not None
        for s in demo.senders.values():
            await s.stop(drain_s=2)
        sock = demo.cluster.sockets["h1"]
        async with await Sidecar.connect(sock, "demo") as sc:
            first = await sc.send(G, '{"sym":"ESZ6","qty":1}')
            assert first.kind == OutcomeKind.ACKED and first.path == "primary"
            # The primary dies; the order rests at the venue; a fill arrives on the backup.
            await demo.control.fault("primary", venue_pb2.FAULT_KIND_RESET)
            await wait_until(lambda: effective(demo)["h1"] == "backup", 5, "h1 on backup")
            stub = venue_pb2_grpc.VenueControlStub(demo.control._venue)
            await stub.SendEvent(
                venue_pb2.VenueEventRequest(kind="fill", client_order_id=first.client_order_id, quantity=1),
                timeout=5,
            )
            ev = await asyncio.wait_for(sc.events.get(), 5)
            assert ev.kind == "fill" and ev.client_msg_id == first.client_msg_id and ev.path == "backup"
            # A silent failure with orders in flight: some end IN_DOUBT; once the stalled
            # line carries a new session, the venue never having seen them means UNKNOWN_TO_VENUE.
            await demo.control.fault("primary", venue_pb2.FAULT_KIND_RECOVER)

            async def up(path: str) -> bool:
                st = await demo.control.sidecar("h1")  # type: ignore[union-attr]
                return any(
                    p.path == path and p.state == pb.PATH_STATE_UP
                    for r in st.routes
                    if r.group == G
                    for p in r.health
                )

            # Resolving asks the venue over a usable path: the primary's, once it is
            # logged on again (the stalled backup is declared silent within ~10 ms).
            await wait_until(lambda: up("primary"), 10, "h1's primary logged on again")
            await demo.control.fault("backup", venue_pb2.FAULT_KIND_STALL, session="h1")
            futs = [sc.submit(G, f'{{"n":{i}}}') for i in range(20)]
            outcomes = [await asyncio.wait_for(f, 10) for _, f in futs]
            doubt = [o.client_msg_id for o in outcomes if o.kind == OutcomeKind.IN_DOUBT]
            assert all(
                o.kind in (OutcomeKind.IN_DOUBT, OutcomeKind.ACKED, OutcomeKind.NO_PATH) for o in outcomes
            )
            assert doubt, [OutcomeKind.name(o.kind) for o in outcomes]
            # While the line that carried them is stalled, what it holds may still reach the
            # venue (it reads again when the stall ends): unknown to the venue is not final yet.
            res = await sc.resolve_in_doubt(G, doubt)
            assert {r.state for r in res} == {spb.RESOLVE_STATE_STILL_IN_DOUBT}, res
            await demo.control.fault("backup", venue_pb2.FAULT_KIND_RECOVER, session="h1")
            await wait_until(lambda: up("backup"), 10, "h1's backup logged on again")
            # Now every answer is final: the venue has read whatever the stalled line held.
            res = await sc.resolve_in_doubt(G, doubt)
            final = {spb.RESOLVE_STATE_UNKNOWN_TO_VENUE, spb.RESOLVE_STATE_ACKED}
            assert {r.state for r in res} <= final, res
            # Known outcomes answer from the sidecar's own ledger.
            (r,) = await sc.resolve_in_doubt(G, [first.client_msg_id])
            assert r.state == spb.RESOLVE_STATE_ACKED


async def test_bad_strategy_input_gets_a_clear_refusal_and_nothing_is_lost() -> None:
    async with cluster(quick=True) as demo:
        sock = demo.cluster.sockets["h2"]
        async with await Sidecar.connect(sock, "demo") as sc:
            o = await sc.send("no-such-group", "x")
            assert o.kind == OutcomeKind.REJECTED and "unknown group" in o.reason
            o = await sc.send(G, "x" * 20_000)
            assert o.kind == OutcomeKind.REJECTED and "payload" in o.reason
            mid = sc.next_id()
            assert (await sc.send(G, "a", msg_id=mid)).kind == OutcomeKind.ACKED
            o = await sc.send(G, "b", msg_id=mid)
            assert o.kind == OutcomeKind.REJECTED and "already submitted" in o.reason
        async with await Sidecar.connect(sock, "intruder") as sc:
            o = await sc.send(G, "x")
            # The refusal is the stream's status. When the sidecar closes the stream while
            # the message is still being written, gRPC core sometimes reports INTERNAL instead
            # of the status: the library then cannot know the message was not taken, and says
            # IN_DOUBT. Either way nothing is lost, and the sidecar never read the order: it
            # refuses the stream right after its open message.
            refused = o.kind == OutcomeKind.REJECTED and "PERMISSION_DENIED" in o.reason
            raced = o.kind == OutcomeKind.IN_DOUBT and "stream to the sidecar broke" in o.reason
            assert refused or raced, o
        # The plain synchronous form.
        sync = await asyncio.to_thread(SyncSidecar, sock, "demo")
        try:
            o = await asyncio.to_thread(sync.send, G, "sync")
            assert o.kind == OutcomeKind.ACKED
        finally:
            await asyncio.to_thread(sync.close)


def test_sidecar_refuses_a_symlinked_or_foreign_socket_path(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "h.sock"
    os.symlink(target, link)
    cfg = tmp_path / "h.yaml"
    cfg.write_text(
        "host_id: h1\ngroups: [g]\ncoordinators: ['127.0.0.1:1']\n"
        f"state_file: {tmp_path / 'st.json'}\nlisten: {{socket: {link}}}\n"
    )
    start = time.monotonic()
    r = cli("sidecar", "--config", str(cfg), timeout=30)
    assert r.returncode == 2 and "symlink" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - start < 30
    assert target.read_text() == ""
