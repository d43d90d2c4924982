"""Peer channels: a newly elected leader is reached at once, whatever its address went through."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.peers import PeerChannels
from failover import rpc
from failover.procs import free_port


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
