"""A follower's watch on the leader's port: revoke a dead leader's lease at once.

The follower keeps its peer channel to the leader (named in the election key)
connected and waits for its state to change; nothing is sent while the leader
is up. When the connection drops, it probes the leader's port with plain TCP
connects a few milliseconds apart. Two refusals in a row (coordinator.core.
takeover) mean the process is gone while its host is up: the follower revokes
the leader's lease, the election key goes with it, and every replica campaigns
as usual, instead of waiting out the lease TTL. A stopped process (its port
still accepts) or an unreachable host (timeouts) never triggers it.

It also keeps a connected channel to every other member (``warm``), so a
Switch forwarded to a leader elected a moment ago, or its CollectHealth, does
not first pay for a connect or wait out a reconnect backoff (measured: 45 ms
of a graceful hand-over went there on a loaded box).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc

from coordinator.core.takeover import DeadLeader, Probe
from coordinator.peers import PeerChannels
from coordinator.store.errors import StoreError
from coordinator.store.port import Store
from coordinator.view import ClusterView, LeaderKey
from failover.aio import run_until_failure, wait_any
from failover.log_limit import RETRYING
from failover.wire.address import parse_host_port

log = logging.getLogger(__name__)

PROBE_GAP_S = 0.005  # between two probes of a refusing port
CONNECT_TIMEOUT_S = 0.1  # a probe not answered within this proves nothing
RECHECK_S = 0.5  # re-probe a leader whose port is not connected, now and then


async def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Probe:
    """One TCP connect to ``address`` (closed at once): accepted, refused, or no answer."""
    try:
        host, port = parse_host_port(address)
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host.strip("[]"), port)
    except ConnectionRefusedError:
        return Probe.REFUSED
    except (OSError, TimeoutError, ValueError):
        return Probe.NO_ANSWER
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Probe.ACCEPTED


class LeaderWatch:
    def __init__(
        self,
        *,
        replica_id: str,
        view: ClusterView,
        peers: PeerChannels,
        store: Store,
        is_leader: Callable[[], bool],
    ) -> None:
        self._id = replica_id
        self._view = view
        self._peers = peers
        self._store = store
        self._is_leader = is_leader
        self._dead = DeadLeader()
        self.revoked = 0  # leases this replica revoked for dead leaders

    def _watched(self) -> LeaderKey | None:
        lk = self._view.leader
        if lk is None or lk.replica_id == self._id or not lk.address or not lk.lease or self._is_leader():
            return None
        return lk

    async def run(self) -> None:
        await run_until_failure({"warm-peers": self._warm_peers(), "watch-leader": self._watch_leader()})

    async def _warm_peers(self) -> None:
        """Every member's channel connected (the leader's is watched below)."""
        loop = asyncio.get_running_loop()
        while True:
            lk = self._view.leader
            for m in list(self._view.members.values()):
                if m.replica_id != self._id and m.address and (lk is None or m.address != lk.address):
                    self._peers.warm(m.address, loop.time())
            await wait_any(self._view.changed.wait(), timeout=RECHECK_S)

    async def _watch_leader(self) -> None:
        while True:
            lk = self._watched()
            if lk is None:
                await wait_any(self._view.changed.wait(), timeout=RECHECK_S)
                continue
            channel = self._peers.for_term(lk.address, lk.token)
            state = channel.get_state(try_to_connect=True)
            if state is grpc.ChannelConnectivity.READY:
                self._dead.observe(lk.token, Probe.ACCEPTED, lk.replica_id)
                await wait_any(channel.wait_for_state_change(state), self._view.changed.wait())
                continue
            result = await probe(lk.address)
            if self._dead.observe(lk.token, result, lk.replica_id):
                await self._revoke(lk)
                await wait_any(self._view.changed.wait(), timeout=RECHECK_S)
            elif result is Probe.REFUSED:
                await asyncio.sleep(PROBE_GAP_S)
            else:
                await wait_any(
                    channel.wait_for_state_change(channel.get_state()),
                    self._view.changed.wait(),
                    timeout=RECHECK_S,
                )

    async def _revoke(self, lk: LeaderKey) -> None:
        if self._view.leader != lk:
            return  # a newer term already
        log.warning(
            "leader %s at %s refuses connections: revoking its lease %x (term %d)",
            lk.replica_id,
            lk.address,
            lk.lease,
            lk.token,
        )
        try:
            await self._store.revoke(lk.lease)
            self.revoked += 1
        except StoreError as exc:  # gone already (it resigned), or etcd did not answer: the TTL still runs
            log.info("revoking lease %x of leader %s: %s", lk.lease, lk.replica_id, exc, extra=RETRYING)
