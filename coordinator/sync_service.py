"""Placeholder of the sidecar stream hub (the sidecar-stream issue fills it in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from coordinator.admin_service import PeerChannels
from coordinator.commit import Committed
from coordinator.config import CoordinatorConfig
from coordinator.core.reconcile import Proposal
from coordinator.freshness import FreshnessProbe
from coordinator.view import ClusterView
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc


class SyncHub:
    def __init__(
        self, cfg: CoordinatorConfig, view: ClusterView, freshness: FreshnessProbe, peers: PeerChannels
    ) -> None:
        self.cfg = cfg
        self.view = view
        self.freshness = freshness
        self.peers = peers
        self.leader: Any = None

    def register(self, server: grpc.aio.Server) -> None:
        pass

    async def run(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def gather_health(self) -> None:
        pass

    def health_policy(self, view: ClusterView) -> list[Proposal]:
        return []

    def on_commit(self, done: Committed) -> None:
        pass

    def sidecar_statuses(self) -> list[apb.SidecarStatus]:
        return []


class PeerService(admin_pb2_grpc.PeerServicer):  # type: ignore[misc]
    def __init__(self, hub: SyncHub, local_status: Callable[[], apb.ReplicaStatus]) -> None:
        self._hub = hub
        self._local_status = local_status

    async def LocalStatus(self, request: apb.LocalStatusRequest, context: Any) -> apb.ReplicaStatus:
        return self._local_status()
