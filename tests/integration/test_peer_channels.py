"""Peer channels: a newly elected leader is reached at once, whatever its address went through."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.peers import PeerChannels
from failover import rpc
from failover.procs import free_port
from tests.harness import ReplicaSet, wait_for


async def test_a_new_term_gets_a_channel_without_the_backoff_of_the_process_before() -> None:
    """A replica restarted at the same address and elected soon after: the channel cached
    while it was down sits in reconnect backoff (up to 1 s), failing every call at once."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    peers = PeerChannels()
    old = peers.get(address)
    stub = health_pb2_grpc.HealthStub(old)
    end = time.monotonic() + 1.5  # failures long enough for the backoff to grow
    while time.monotonic() < end:
        try:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.2)
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.05)
    server = rpc.make_server()
    rpc.add_health_and_reflection(server, [])
    server.add_insecure_port(address)
    await server.start()
    try:
        channel = peers.for_term(address, 7)
        started = time.monotonic()
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5.0)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # Generous: a call on a channel in backoff fails at once (UNAVAILABLE) or waits out
        # the backoff; a fresh channel connects in a few ms on loopback.
        assert time.monotonic() - started < 0.5
        assert peers.for_term(address, 7) is channel  # once per term, not per call
    finally:
        await server.stop(None)
        await peers.close()


async def test_followers_keep_a_connected_channel_to_every_member(etcd_cluster, prefix) -> None:
    """The first call to a newly elected leader must not pay for a connect, nor wait out a
    reconnect backoff learned while the process before it at that address was down: every
    replica keeps its channels to the other members connected, also across a restart."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=3)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        follower = next(i for i, r in enumerate(rs.replicas) if r is not None and r is not leader)
        other = next(r for r in rs.running() if r is not leader and r is not rs.replicas[follower])
        address = rs.address(follower)

        def connected() -> bool:
            ch = other.peers._channels.get(address)
            return ch is not None and ch.get_state() is grpc.ChannelConnectivity.READY

        await wait_for(connected, 10, "a connected channel to the other follower, with no call made")
        await rs.stop(follower)
        await wait_for(lambda: not connected(), 10, "the channel to notice the stop")
        # Down long enough for the channel's reconnect backoff to grow past a second.
        await asyncio.sleep(1.5)
        await rs.start(follower)
        await wait_for(connected, 10, "the channel connected again to the restarted replica")
    finally:
        await rs.stop_all()
