"""Replica side of health: a host's last report reaches the leader even when its stream ends at once."""

from __future__ import annotations

import asyncio
import contextlib

from coordinator.health_forwarder import HealthForwarder
from coordinator.keys import Keys
from coordinator.peers import PeerChannels
from coordinator.view import ClusterView, LeaderKey
from failover import rpc
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from failover.v1 import types_pb2 as pb

G = "g"


def _paths(state: int) -> list[pb.PathHealth]:
    return [pb.PathHealth(group=G, path="a", state=state)]  # type: ignore[arg-type]


async def test_a_report_sent_just_before_the_stream_ends_is_not_replaced_by_gone() -> None:
    delivered: list[apb.HealthForward] = []
    leader_reachable = True
    arrived = asyncio.Event()

    def deliver(msg: apb.HealthForward) -> bool:
        arrived.set()
        if leader_reachable:
            delivered.append(msg)
        return leader_reachable

    fwd = HealthForwarder("r1", ClusterView(Keys("/t/")), PeerChannels(), deliver)
    task = asyncio.create_task(fwd.run())
    try:
        fwd.opened(1, "h1", "site")
        fwd.report(1, _paths(pb.PATH_STATE_UP))
        async with asyncio.timeout(5):
            while not delivered:
                await arrived.wait()
                arrived.clear()
        # The leader is unreachable for a moment (an etcd outage): the sidecar reports the
        # path down and leaves this (stale) replica right away.
        leader_reachable = False
        fwd.report(1, _paths(pb.PATH_STATE_DOWN))
        async with asyncio.timeout(5):
            await arrived.wait()  # one failed attempt with the report in it
        fwd.ended(1)
        leader_reachable = True
        async with asyncio.timeout(5):
            while len(delivered) < 2:
                arrived.clear()
                await arrived.wait()
        last = delivered[-1].hosts
        assert len(last) == 1 and last[0].host_id == "h1" and last[0].gone and last[0].full
        assert [p.state for p in last[0].paths] == [pb.PATH_STATE_DOWN]
        assert [s.stage for s in last[0].stages] == ["forward"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_host_that_never_reported_is_only_marked_gone() -> None:
    delivered: list[apb.HealthForward] = []
    arrived = asyncio.Event()

    def deliver(msg: apb.HealthForward) -> bool:
        delivered.append(msg)
        arrived.set()
        return True

    fwd = HealthForwarder("r1", ClusterView(Keys("/t/")), PeerChannels(), deliver)
    fwd.opened(1, "h1", "site")
    fwd.opened(2, "h1", "site")
    fwd.ended(1)  # still connected through stream 2: nothing to say
    fwd.ended(2)
    task = asyncio.create_task(fwd.run())
    try:
        async with asyncio.timeout(5):
            await arrived.wait()
        (h,) = delivered[0].hosts
        assert h.gone and not h.full and not h.paths
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_report_span_still_pending_when_the_forwarder_stops_is_ended() -> None:
    """No leader to deliver to, then the replica stops: the report spans (one waiting, one
    in a failed attempt) end, marked undelivered, instead of leaking; a report that arrives
    after the stop opens none."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from failover.telemetry import tracing

    exp = InMemorySpanExporter()
    tr = tracing.build("failover-coordinator", "r1", exporters=[exp])
    attempted = asyncio.Event()

    def deliver(msg: apb.HealthForward) -> bool:
        attempted.set()
        return False  # no leader

    fwd = HealthForwarder("r1", ClusterView(Keys("/t/")), PeerChannels(), deliver, tr.tracer)
    ctx = ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
    task = asyncio.create_task(fwd.run())
    try:
        fwd.opened(1, "h1", "site")
        fwd.opened(2, "h2", "site")
        fwd.report(1, _paths(pb.PATH_STATE_DOWN), ctx)
        async with asyncio.timeout(5):
            await attempted.wait()
        fwd.report(2, _paths(pb.PATH_STATE_DOWN), ctx)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    fwd.opened(3, "h3", "site")
    fwd.report(3, _paths(pb.PATH_STATE_DOWN), ctx)
    spans = exp.get_finished_spans()
    assert sorted((s.attributes or {})["failover.host"] for s in spans) == ["h1", "h2"], spans
    assert all((s.attributes or {}).get("failover.delivered") is False for s in spans)
    tr.shutdown()


class _NoScan(dict):  # type: ignore[type-arg]
    """The forwarder's stream table, refusing to be walked: a closing stream must find
    whether its host has another stream without looking at every other stream."""

    def _refuse(self, *_a: object) -> None:
        raise AssertionError("walked every stream to close one: O(n) per close, O(n^2) per mass disconnect")

    values = items = keys = __iter__ = _refuse  # type: ignore[assignment]


def test_closing_a_stream_costs_the_same_however_many_streams_are_open() -> None:
    fwd = HealthForwarder("r1", ClusterView(Keys("/t/")), PeerChannels(), lambda m: True)
    n = 2000
    for sid in range(n):
        fwd.opened(sid, f"h{sid // 2}", "site")  # two streams per host (a reconnect overlaps)
    fwd._streams = _NoScan(fwd._streams)
    for sid in range(0, n, 2):
        fwd.ended(sid)  # the host still has its other stream: nothing to tell the leader
    assert not fwd._pending
    for sid in range(1, n, 2):
        fwd.ended(sid)  # the host's last stream: "gone" goes to the leader
    assert sorted(fwd._pending) == sorted(f"h{i}" for i in range(n // 2))
    assert all(p.gone for p in fwd._pending.values())
    fwd.ended(1)  # already ended: nothing
    fwd.opened(7, "h9", "site")
    fwd.ended(7)
    assert fwd._pending["h9"].gone


class _Leader(admin_pb2_grpc.PeerServicer):  # type: ignore[misc]
    """A leader's Peer service that records forwarded health (it never asks for any)."""

    def __init__(self) -> None:
        self.got: list[apb.HealthForward] = []
        self.arrived = asyncio.Event()

    async def ForwardHealth(self, request: apb.HealthForward, context: object) -> apb.ForwardAck:
        self.got.append(request)
        self.arrived.set()
        return apb.ForwardAck(is_leader=True)


async def test_a_new_leader_gets_the_full_state_without_asking() -> None:
    """A new leader collects every replica's full state by asking (CollectHealth); one that
    cannot reach this replica (its port refused from there, a firewall's REJECT) would know
    none of its hosts until a report changed, and refuse every switch ("no host reports the
    path up"). The replica pushes its full state to each new term's leader itself."""
    leader = _Leader()
    server = rpc.make_server()
    admin_pb2_grpc.add_PeerServicer_to_server(leader, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    view = ClusterView(Keys("/t/"))
    peers = PeerChannels()
    fwd = HealthForwarder("r1", view, peers, lambda _msg: False)
    task = asyncio.create_task(fwd.run())
    try:
        fwd.opened(1, "h1", "site")
        fwd.report(1, _paths(pb.PATH_STATE_UP))  # no leader yet: kept pending
        await asyncio.sleep(0.05)
        view.leader = LeaderKey("r2", f"127.0.0.1:{port}", token=7)
        view.changed.set()
        view.changed = asyncio.Event()
        async with asyncio.timeout(5):
            while not any(h.host_id == "h1" and h.full for m in leader.got for h in m.hosts):
                leader.arrived.clear()
                await leader.arrived.wait()
        await asyncio.sleep(0.3)  # the pending report may arrive too
        n = len(leader.got)
        # nothing changed since: the same term gets nothing more, the next leader's term gets it
        view.changed.set()
        view.changed = asyncio.Event()
        await asyncio.sleep(0.3)
        assert len(leader.got) == n, leader.got
        view.leader = LeaderKey("r3", f"127.0.0.1:{port}", token=9)
        view.changed.set()
        view.changed = asyncio.Event()
        async with asyncio.timeout(5):
            while len(leader.got) == n:
                leader.arrived.clear()
                await leader.arrived.wait()
        assert [h.host_id for h in leader.got[-1].hosts] == ["h1"] and leader.got[-1].hosts[0].full
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peers.close()
        await server.stop(None)


async def test_a_full_state_built_before_a_report_and_delivered_after_it_does_not_undo_it() -> None:
    """Regression: a replica's full state (pushed to a new leader, or its CollectHealth answer)
    built while a host's path was still connecting, delivered after the delta that said the
    path is up (they travel separately), was dated on arrival and so replaced the newer
    report: the leader counted that host's path as unknown until the host's next change."""
    from coordinator.config import HealthSection
    from coordinator.core.health import State
    from coordinator.leader_health import LeaderHealth

    deltas: list[apb.HealthForward] = []
    sent = asyncio.Event()

    def deliver(msg: apb.HealthForward) -> bool:
        deltas.append(msg)
        sent.set()
        return True

    fwd = HealthForwarder("r1", ClusterView(Keys("/t/")), PeerChannels(), deliver)
    fwd.opened(1, "h1", "site")
    fwd.report(1, _paths(pb.PATH_STATE_CONNECTING))
    full = fwd.full_state()  # e.g. the answer to a new leader's CollectHealth, still in flight
    fwd.report(1, _paths(pb.PATH_STATE_UP))
    task = asyncio.create_task(fwd.run())
    try:
        async with asyncio.timeout(5):
            await sent.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    leader = LeaderHealth(
        replica_id="c1",
        settings=HealthSection(),
        view=ClusterView(Keys("/t/")),
        peers=PeerChannels(),
        local_state=apb.HealthForward,
        wake=lambda: None,
        outage_since=lambda: 0.0,
    )
    for msg in (*deltas, full):
        leader.accept(msg)
    assert leader.table.hosts["h1"].paths[(G, "a")].state is State.UP
