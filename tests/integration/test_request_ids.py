"""An operator request is committed at most once, however many copies of it reach leaders.

A follower forwards a request to the leader and, when leadership moves while it waits,
sends it again to the next leader; a stopping leader also passes the requests it holds
to its successor. Both copies used to commit (seen in `failover bench control-plane`: 2 of
6 graceful hand-overs committed the bench's one Switch twice). Every copy now carries
one request id (``failover-request-id``: the caller's, or one the first replica assigns):
a leader answers copies of a request it is running or has answered from that outcome, and
a new leader answers a Switch the previous one committed from the route record.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, wait_for

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
HEADER = "failover-request-id"


def _switch(path: str) -> apb.SwitchRequest:
    return apb.SwitchRequest(group=G, path=path, reason="t", operator="t", force=True)


async def _send(address: str, path: str, rid: str) -> apb.ControlResponse:
    async with admin(address) as stub:
        resp: apb.ControlResponse = await stub.Switch(_switch(path), timeout=10, metadata=((HEADER, rid),))
        return resp


async def test_copies_of_one_request_at_the_leader_and_through_a_follower_commit_once(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "initial decision")
        i_leader = rs.replicas.index(leader)
        at_leader, at_follower = rs.address(i_leader), rs.address(1 - i_leader)
        a, b, c = await asyncio.gather(
            _send(at_leader, "backup", "req-1"),
            _send(at_leader, "backup", "req-1"),
            _send(at_follower, "backup", "req-1"),
        )
        epochs = {(x.decision.epoch.era, x.decision.epoch.revision) for x in (a, b, c)}
        assert len(epochs) == 1, f"one request committed {len(epochs)} times: {epochs}"
        assert [d.record.request_id for d in leader.leader.recent].count("req-1") == 1
        # A later copy, once answered, gets the same answer; a new id is a new request.
        again = await _send(at_follower, "backup", "req-1")
        assert (again.decision.epoch.era, again.decision.epoch.revision) in epochs
        with pytest.raises(grpc.aio.AioRpcError) as err:  # an id names one request
            await _send(at_follower, "primary", "req-1")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert "different request" in (err.value.details() or "")
        other = await _send(at_leader, "backup", "req-2")
        assert (other.decision.epoch.era, other.decision.epoch.revision) not in epochs
    finally:
        await rs.stop_all()


async def test_a_switch_the_previous_leader_committed_is_not_committed_again(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        first = await rs.wait_leader()
        await wait_for(lambda: G in first.view.routes, 10, "initial decision")
        i_first = rs.replicas.index(first)
        survivor = rs.address(1 - i_first)
        done = await _send(rs.address(i_first), "backup", "req-7")
        await rs.stop(i_first)  # graceful: the next leader is elected at once
        second = await rs.wait_leader(not_id=rs.configs[i_first].replica_id)
        epoch = second.view.epoch_of(G)
        again = await _send(survivor, "backup", "req-7")
        assert again.decision.epoch == done.decision.epoch, "the new leader committed the request again"
        # The group's route, not the store's revision: other keys (leases, candidacies,
        # health) may be written meanwhile.
        assert second.view.epoch_of(G) == epoch
        assert second.leader.recent == []
    finally:
        await rs.stop_all()


class Ctx:
    """The part of a gRPC servicer context the header checks read."""

    def __init__(self, md: tuple[tuple[str, str], ...]) -> None:
        self.md = md

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.md


async def test_a_malformed_request_id_is_refused() -> None:
    from coordinator.request_checks import request_id

    assert request_id(Ctx(((HEADER, "abc-1.2_3:x"),))) == "abc-1.2_3:x"
    assert len(request_id(Ctx(()))) == 32  # assigned
    for bad in ("", "x" * 65, "a b", "é"):
        with pytest.raises(ValueError):
            request_id(Ctx(((HEADER, bad),)))


async def test_a_malformed_forwarded_by_header_is_refused() -> None:
    """The replicas a copy came through (a replica never forwards a copy back to one of
    them); anything else in that header is refused, not guessed at."""
    from coordinator.request_checks import FORWARDED_BY_HEADER, forwarded_by

    assert forwarded_by(Ctx(())) == ()
    assert forwarded_by(Ctx(((FORWARDED_BY_HEADER, "c1,c-2"),))) == ("c1", "c-2")
    for bad in ("", ",", "c1,,c2", "a b", ",".join(["c"] * 9), "x" * 65):
        with pytest.raises(ValueError):
            forwarded_by(Ctx(((FORWARDED_BY_HEADER, bad),)))


async def test_the_cli_sends_one_request_id_to_every_replica_it_tries(etcd_cluster, prefix) -> None:
    """`failover switch` moves on to the next address on UNAVAILABLE or DEADLINE_EXCEEDED; a
    replica that timed out may still have committed the switch, so every address gets the
    same id, and the decision records it."""
    from failover import rpc
    from tests.procs import cli

    seen: list[str] = []

    async def unavailable(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        seen.append(dict(context.invocation_metadata() or ()).get(HEADER, ""))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "a test replica that is going away")
        return b""

    down = rpc.make_server()
    down.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "failover.v1.Admin", {"Switch": grpc.unary_unary_rpc_method_handler(unavailable)}
            ),
        )
    )
    port = down.add_insecure_port("127.0.0.1:0")
    await down.start()
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        r = await rs.wait_leader()
        await wait_for(lambda: G in r.view.routes, 10, "initial decision")
        out = await asyncio.to_thread(
            cli, "switch", G, "backup", "--force", "--reason", "t", "-c", f"127.0.0.1:{port},{rs.address(0)}"
        )
        assert out.returncode == 0, out.stderr
        assert len(seen) == 1 and seen[0], seen
        await wait_for(lambda: r.view.routes[G].record.request_id == seen[0], 5, "the decision, with that id")
    finally:
        await rs.stop_all()
        await down.stop(None)
