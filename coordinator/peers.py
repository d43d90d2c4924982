"""Replica to replica: cached channels to peers, and the Peer service they call.

The Peer service only translates: status goes to the replica's own status
function, forwarded health to the leader's table of the current term, and a
new leader's request for full health to this replica's forwarder. Before that,
every field is checked (coordinator/request_checks.py: INVALID_ARGUMENT naming
the field) and, with mTLS, the replica id a request names must be the caller's
certificate's (PERMISSION_DENIED, logged and counted): a replica speaks only as itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from coordinator.access import Denials
from coordinator.authz import parse_identity
from coordinator.request_checks import (
    check_collect_health,
    check_health_forward,
    check_local_status,
    check_prepare_to_lead,
)
from failover import rpc
from failover.tls import TlsSection, peer_uri_or_cn
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

log = logging.getLogger(__name__)


class PeerChannels:
    """One cached channel per peer replica address (mTLS when ``tls`` says so).

    When the certificate files change on disk, the next ``get`` builds new channels
    (new handshakes use the new certificate); the old ones are closed with a grace
    so calls already on them finish.
    """

    def __init__(
        self, tls: TlsSection | None = None, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()
    ) -> None:
        """``interceptors``: on every channel (the replica's ``rpc.client.duration``)."""
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._interceptors = tuple(interceptors)
        self._tls = tls if tls is not None and tls.enabled else None
        self._sig = self._tls.files().signature() if self._tls else None
        self._retired: list[grpc.aio.Channel] = []
        self._terms: dict[str, int] = {}  # address -> the latest leader term it was used for
        self._rebuilt: dict[str, float] = {}  # address -> when warm() last replaced its channel

    def get(self, address: str) -> grpc.aio.Channel:
        if self._tls is not None:
            sig = self._tls.files().signature()
            if sig != self._sig:
                self._sig = sig
                self._retired.extend(self._channels.values())
                self._channels.clear()
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = self._new(address)
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
                ch = self._channels[address] = self._new(address)
        return ch

    def warm(self, address: str, now: float, rebuild_after_s: float = 1.0) -> None:
        """Keep the channel to a peer connected before it is needed: the first call to a
        newly elected leader then costs no connect, and no reconnect backoff learned while
        an earlier process at that address was down. A channel in TRANSIENT_FAILURE is
        replaced (the old one closed: calls fail at once on it), at most once per
        ``rebuild_after_s`` per address."""
        ch = self.get(address)
        state = ch.get_state(try_to_connect=True)
        if state is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return
        if now - self._rebuilt.get(address, float("-inf")) < rebuild_after_s:
            return
        self._rebuilt[address] = now
        self._retired.append(ch)
        fresh = self._channels[address] = self._new(address)
        fresh.get_state(try_to_connect=True)
        task = asyncio.ensure_future(ch.close(None))
        task.add_done_callback(lambda _t: self._retired.remove(ch) if ch in self._retired else None)

    def _new(self, address: str) -> grpc.aio.Channel:
        return rpc.channel(address, tls=self._tls, interceptors=self._interceptors)

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
        prepare: Callable[[float | None], Awaitable[apb.PrepareToLeadResponse]] | None = None,
        tls: bool = False,
        denials: Denials | None = None,
    ) -> None:
        self._local_status = local_status
        self._accept_health = accept_health
        self._full_health = full_health
        self._prepare = prepare
        self._tls = tls
        self._denials = denials

    async def LocalStatus(self, request: apb.LocalStatusRequest, context: Any) -> apb.ReplicaStatus:
        await _refuse_invalid(context, check_local_status(request))
        return self._local_status(request)

    async def ForwardHealth(self, request: apb.HealthForward, context: Any) -> apb.ForwardAck:
        """``is_leader`` false: this replica has no term now; the sender re-resolves the leader."""
        await _refuse_invalid(context, check_health_forward(request))
        await self._as_itself(context, "replica_id", request.replica_id, "ForwardHealth")
        return apb.ForwardAck(is_leader=self._accept_health(request))

    async def CollectHealth(self, request: apb.CollectHealthRequest, context: Any) -> apb.HealthForward:
        await _refuse_invalid(context, check_collect_health(request))
        await self._as_itself(context, "leader_id", request.leader_id, "CollectHealth")
        return self._full_health()

    async def PrepareToLead(
        self, request: apb.PrepareToLeadRequest, context: Any
    ) -> apb.PrepareToLeadResponse:
        await _refuse_invalid(context, check_prepare_to_lead(request))
        await self._as_itself(context, "leader_id", request.leader_id, "PrepareToLead")
        if self._prepare is None:
            return apb.PrepareToLeadResponse(serving=False)
        return await self._prepare(context.time_remaining())

    async def _as_itself(self, context: Any, field: str, claimed: str, action: str) -> None:
        """With mTLS: PERMISSION_DENIED unless ``claimed`` is the caller certificate's replica name."""
        if not self._tls:
            return
        raw = peer_uri_or_cn(context)
        ident = parse_identity(raw) if raw else None
        if ident is not None and ident.role == "replica" and ident.name == claimed:
            return
        message = f"{ident or 'no identity'} may not call {action} as {field} {claimed!r}"
        log.warning("denied: %s", message)
        if self._denials is not None:
            self._denials.by_caller[(raw or "", f"/failover.v1.Peer/{action}")] += 1
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)


async def _refuse_invalid(context: Any, problem: str | None) -> None:
    if problem is not None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
