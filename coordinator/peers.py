"""Replica to replica: cached channels to peers, and the Peer service they call.

The Peer service only translates: status goes to the replica's own status
function, forwarded health to the leader's table of the current term, and a
new leader's request for full health to this replica's forwarder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from failover import rpc
from failover.tls import TlsSection
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc


class PeerChannels:
    """One cached channel per peer replica address (mTLS when ``tls`` says so).

    When the certificate files change on disk, the next ``get`` builds new channels
    (new handshakes use the new certificate); the old ones are closed with a grace
    so calls already on them finish.
    """

    def __init__(self, tls: TlsSection | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tls = tls if tls is not None and tls.enabled else None
        self._sig = self._tls.files().signature() if self._tls else None
        self._retired: list[grpc.aio.Channel] = []
        self._terms: dict[str, int] = {}  # address -> the latest leader term it was used for

    def get(self, address: str) -> grpc.aio.Channel:
        if self._tls is not None:
            sig = self._tls.files().signature()
            if sig != self._sig:
                self._sig = sig
                self._retired.extend(self._channels.values())
                self._channels.clear()
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = rpc.channel(address, tls=self._tls)
        return ch

    def for_term(self, address: str, token: int) -> grpc.aio.Channel:
        """The channel to the leader of term ``token`` at ``address``.

        Once per new term, a channel in TRANSIENT_FAILURE is rebuilt: the reconnect
        backoff it learned while an earlier process at that address was down (up to
        1 s) says nothing about the one just elected there, and until that backoff
        ends every call on it fails at once.
        """
        ch = self.get(address)
        if self._terms.get(address) != token:
            self._terms[address] = token
            if ch.get_state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                self._retired.append(ch)
                ch = self._channels[address] = rpc.channel(address, tls=self._tls)
        return ch

    async def close(self) -> None:
        for ch in [*self._channels.values(), *self._retired]:
            await ch.close(None)
        self._channels.clear()
        self._retired.clear()


class PeerService(admin_pb2_grpc.PeerServicer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        local_status: Callable[[apb.LocalStatusRequest], apb.ReplicaStatus],
        accept_health: Callable[[apb.HealthForward], bool],
        full_health: Callable[[], apb.HealthForward],
    ) -> None:
        self._local_status = local_status
        self._accept_health = accept_health
        self._full_health = full_health

    async def LocalStatus(self, request: apb.LocalStatusRequest, context: Any) -> apb.ReplicaStatus:
        return self._local_status(request)

    async def ForwardHealth(self, request: apb.HealthForward, context: Any) -> apb.ForwardAck:
        """``is_leader`` false: this replica has no term now; the sender re-resolves the leader."""
        return apb.ForwardAck(is_leader=self._accept_health(request))

    async def CollectHealth(self, request: apb.CollectHealthRequest, context: Any) -> apb.HealthForward:
        return self._full_health()
