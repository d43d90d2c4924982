"""One coordinator replica: the wiring of store, view, election, leader and servers.

Started with ``Replica(cfg).run()``; cancelling it resigns (revokes the
election lease, so a follower takes over at once), marks health NOT_SERVING
and stops the gRPC server with a short grace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.access import AuthzInterceptor, Denials
from coordinator.admin_service import AdminService
from coordinator.commit import Committer
from coordinator.config import CoordinatorConfig
from coordinator.core.epoch_proof import new_key
from coordinator.election import ANSWER_S, Election
from coordinator.etcd_reach import keep_near_etcd_leader
from coordinator.freshness import FreshnessProbe
from coordinator.health_forwarder import HealthForwarder
from coordinator.held_epochs import HeldEpochCheck
from coordinator.keys import Keys
from coordinator.leader import LeaderWork
from coordinator.leader_health import HealthTerms, LeaderHealth
from coordinator.leader_watch import LeaderWatch
from coordinator.members import register_forever
from coordinator.metrics import CoordinatorMetrics
from coordinator.peers import PeerChannels, PeerService
from coordinator.status_summary import decided_of, shape
from coordinator.store.errors import StoreError
from coordinator.store.etcd_store import EtcdStore
from coordinator.store.mirror import Mirror
from coordinator.store.port import Store
from coordinator.store.types import Compare, Put
from coordinator.sync_service import SyncHub
from coordinator.view import Candidate, ClusterView
from failover import rpc, tls
from failover.aio import cancel_and_wait, finish
from failover.log_limit import RETRYING
from failover.model.convert import epoch_pb
from failover.ratelimit import PerCaller
from failover.telemetry import metrics as telemetry
from failover.telemetry import tracing
from failover.telemetry.loop_lag import LoopLag
from failover.telemetry.rpc_metrics import RpcClientMetrics, RpcServerMetrics
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

log = logging.getLogger(__name__)

SERVICES = ["failover.v1.Admin", "failover.v1.Peer", "failover.v1.Sync"]
ALARM_POLL_S = 5.0  # etcd alarms (NOSPACE) are read this often for the metrics
ETCD_LEADER_CHECK_S = 5.0  # which etcd member leads is asked this often (calls go there)
SETTLE_S = 1.0  # a graceful stop waits this long at most for a commit in flight
PREPARE_S = ANSWER_S  # a hand-over's health collection, when the asker sets no deadline
PREPARE_MARGIN_S = 0.01  # kept of the asker's deadline to send the answer back
ID_CHECK_S = 1.0  # at start: is our replica_id used by a running replica (each step)


def _config_error(group: BaseExceptionGroup) -> Exception | None:
    from failover.config_source import ConfigError

    match, _ = group.split(ConfigError)
    if match is None:
        return None
    first = match.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first if isinstance(first, Exception) else None


class Replica:
    def __init__(
        self,
        cfg: CoordinatorConfig,
        store: Store | None = None,
        tel: telemetry.Telemetry | None = None,
        traces: tracing.Tracing | None = None,
    ) -> None:
        self.cfg = cfg
        # Metrics: the config's endpoints unless the caller brings its own provider (tests, demo).
        self.telemetry = tel or telemetry.build(
            "failover-coordinator",
            cfg.replica_id,
            listen=cfg.metrics_listen,
            otlp_endpoint=cfg.otlp_endpoint,
            otlp_interval_ms=cfg.otlp_interval_ms,
        )
        self._owns_telemetry = tel is None
        # Traces: exported over OTLP to the same endpoint as the metrics, when configured.
        self.tracing = traces or tracing.build(
            "failover-coordinator", cfg.replica_id, otlp_endpoint=cfg.otlp_endpoint
        )
        self._owns_tracing = traces is None
        self.metrics = CoordinatorMetrics(self.telemetry.meter, cfg.replica_id)
        self.keys = Keys(cfg.etcd.prefix)
        self.store: Store = store or EtcdStore(
            cfg.etcd.endpoints,
            rpc_timeout_s=cfg.etcd.rpc_timeout_ms / 1000,
            rpc_attempts=cfg.etcd.rpc_attempts,
            lease_timing=cfg.lease_timing,
            tls=cfg.etcd.tls,
            on_request=self.metrics.etcd_request,
        )
        self.view = ClusterView(self.keys)
        self.mirror = Mirror(self.store, self.keys.prefix, self._on_change, self._on_restore)
        self.loop_lag = LoopLag()
        self.freshness = FreshnessProbe(
            self.store,
            self.mirror,
            interval_ms=cfg.freshness.probe_interval_ms,
            max_lag_revisions=cfg.freshness.max_lag_revisions,
            stale_after_ms=cfg.freshness.stale_after_ms,
            loop_lag=self.loop_lag,
        )
        self.committer = Committer(
            self.store, self.keys, self.view, hold_before_commit_ms=cfg.test_hooks.hold_before_commit_ms
        )
        self.peers = PeerChannels(
            cfg.tls, interceptors=[cast(grpc.aio.ClientInterceptor, RpcClientMetrics(self.metrics))]
        )
        self.denials = Denials()
        # Leader-side health lives per term; the forwarder (replica side) outlives terms.
        self.health = HealthTerms(self._leader_health)
        tracer = self.tracing.tracer
        self.forwarder = HealthForwarder(cfg.replica_id, self.view, self.peers, self.health.accept, tracer)
        self.hub = SyncHub(cfg, self.view, self.freshness, self.forwarder, tracer)
        self.hub.loop_lag = self.loop_lag
        # A replica started after an etcd restore learns it from the sidecars' hellos.
        self.held_check = HeldEpochCheck(self.store, self.keys, self.view, self.mirror, self._on_restore)
        self.hub.held_check = self.held_check
        self.hub.denials = self.denials
        self.leader = LeaderWork(
            self.view,
            self.committer,
            history_retention=cfg.history_retention,
            before_first_decision=self.health.gather,
            health_policy=self.health.propose,
            store=self.store,
            keys=self.keys,
            guard=self.health,
            health_in_hand=self.health.guard_ready,
        )
        self.hub.metrics = self.leader.metrics = self.metrics
        self.leader.tracer = tracer
        self.metrics.bind(self)
        self.election = Election(
            self.store,
            self.keys,
            self.view,
            replica_id=cfg.replica_id,
            address=cfg.advertised,
            ttl_s=cfg.election.lease_ttl_s,
            successor_ok=self._successor_ok,
            answers=self._serves,
        )
        # A follower revokes the lease of a leader whose port refuses connections.
        self.leader_watch = LeaderWatch(
            replica_id=cfg.replica_id,
            view=self.view,
            peers=self.peers,
            store=self.store,
            is_leader=lambda: self.election.is_leader,
        )
        self.started_monotonic = time.monotonic()
        self.port = 0
        self.health_service: Any = None  # the gRPC health servicer, once serving
        self.ready = asyncio.Event()
        self._served_out = False  # the hand-over stopped the server already
        self.handing_over = False  # stopping: no hand-over to this replica

    def _successor_ok(self, cand: Candidate) -> bool:
        """A member whose peer channel is connected now: a hand-over to a replica that
        cannot answer would leave the key on its lease until the TTL expires it."""
        if cand.replica_id not in self.view.members:
            return False
        state = self.peers.get(cand.address).get_state(try_to_connect=False)
        return state is grpc.ChannelConnectivity.READY

    async def _serves(self, cand: Candidate) -> bool:
        """Whether a candidate says it serves, once it has collected the health its term will
        need (a stopping replica says no; a paused one does not answer). A replica of an
        earlier version, without ``PrepareToLead``, is asked its health check instead."""
        channel = self.peers.get(cand.address)
        request = apb.PrepareToLeadRequest(leader_id=self.cfg.replica_id)
        try:
            prepared = await rpc.unary(
                admin_pb2_grpc.PeerStub(channel).PrepareToLead(request, timeout=ANSWER_S)
            )
            return bool(prepared.serving)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        stub = health_pb2_grpc.HealthStub(channel)
        resp = await rpc.unary(
            stub.Check(health_pb2.HealthCheckRequest(service="failover.v1.Peer"), timeout=ANSWER_S)
        )
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    async def _prepare_to_lead(self, time_left_s: float | None) -> apb.PrepareToLeadResponse:
        """Asked by a stopping leader: collect health now (while it still leads), within the
        caller's deadline less a margin for the answer, so a term handed here need not
        wait for its own collection before guard rails can answer."""
        if self.handing_over or not self.ready.is_set() or self.election.is_leader:
            return apb.PrepareToLeadResponse(serving=False)
        budget = PREPARE_S if time_left_s is None else max(0.0, time_left_s - PREPARE_MARGIN_S)
        answered = await self.health.prepare(budget)
        return apb.PrepareToLeadResponse(serving=not self.handing_over, replicas_answered=answered)

    def _leader_health(self) -> LeaderHealth:
        return LeaderHealth(
            replica_id=self.cfg.replica_id,
            settings=self.cfg.health,
            view=self.view,
            peers=self.peers,
            local_state=self.forwarder.full_state,
            wake=self.leader.wake,
            outage_since=lambda: self.freshness.state.stale_since_monotonic,
            outage=lambda: self.freshness.state.reason if self.freshness.state.stale else None,
        )

    def _on_change(self, changed: set[str], revision: int, relisted: bool) -> None:
        self.view.apply(self.mirror.data, changed, revision)

    def _on_restore(self, detail: str) -> None:
        self.view.mark_restore(detail)

    def local_status(self, request: apb.LocalStatusRequest | None = None) -> apb.ReplicaStatus:
        """This replica's status; with a request, shaped by its filters (status_summary)."""
        full = self._full_local_status()
        return full if request is None else shape(full, request, decided_of(self.view.routes))

    def _full_local_status(self) -> apb.ReplicaStatus:
        f = self.freshness.state
        fresh = self.hub.freshness_pb()  # what its sidecars are told (a detected restore: stale)
        return apb.ReplicaStatus(
            replica_id=self.cfg.replica_id,
            address=self.cfg.advertised,
            is_leader=self.election.is_leader,
            streams_only=not self.cfg.election.campaign,
            applied_revision=self.mirror.revision,
            lag_revisions=f.lag_revisions,
            stale=fresh.stale,
            stale_reason=fresh.stale_reason,
            sidecars=self.hub.sidecar_statuses(),
            reachable=True,
            recent_commits=[
                apb.CommitRecord(
                    group=c.record.group,
                    epoch=epoch_pb(c.epoch),
                    commit_us=c.commit_us,
                    reason=c.record.reason,
                )
                for c in self.leader.recent[-20:]
            ],
            degraded_groups=sorted(g for g, st in self.health.statuses.items() if st.degraded)
            if self.election.is_leader
            else [],
            path_health=self._path_health() if self.election.is_leader else [],
        )

    def _path_health(self) -> list[apb.PathJudgement]:
        return [
            apb.PathJudgement(
                group=g,
                path=v.path,
                reporting=v.reporting,
                up=v.up,
                down=v.down,
                slow=v.slow,
                failing=v.failing,
                healthy=v.healthy,
            )
            for g, st in sorted(self.health.statuses.items())
            for v in st.verdicts
        ]

    async def _campaign(self) -> None:
        """Stand for leader, term after term; a stream-only replica (election.campaign:
        false) never does, and so never registers as a candidate a leader could hand to."""
        if self.cfg.election.campaign:
            await self.election.run(self.health.term(self.leader.run))
            return
        log.info(
            "replica %s never stands for leader (election.campaign: false): it serves streams "
            "and passes operator calls to the leader",
            self.cfg.replica_id,
        )
        await asyncio.Event().wait()

    async def _hand_over(self, election: asyncio.Task[None], server: grpc.aio.Server, health: Any) -> None:
        """Stop in the order that lets a follower lead at once and leaves no gap: pick the
        successor while still leading (a request reaching us meanwhile is committed here),
        stand down (nothing new is started here; a commit in flight lands, bounded, so no
        write races the hand-over), then resign (the election key is put on the
        successor's lease in one transaction, then our lease is revoked, before the term
        unwinds; with no successor to hand to, the revoke deletes the key and every
        follower's watch fires), while the view and the server still run, so a Switch
        forwarded here meanwhile is passed on to the successor instead of failing; then
        stop serving (calls in flight get a short grace, the view still moving); the rest
        stops after.
        """
        started = time.monotonic()
        self.handing_over = True
        was_leader = self.election.is_leader

        async def stand_down() -> None:
            self.leader.stand_down()  # nothing new starts here; requests go to the successor
            await self.leader.settle(SETTLE_S)

        await self.election.resign(stand_down)
        if was_leader:
            how = f"handed to {self.election.handed_to}" if self.election.handed_to else "lease revoked"
            log.info("resigned: %s %.1f ms after stop began", how, (time.monotonic() - started) * 1000)
        # Bounded: the revoke inside gives up after 2 s (the TTL then expires the lease).
        # Cancelled again until it ends: on Python 3.11 a TaskGroup aborting a term at
        # the same moment can swallow one cancel (the run loop also stops by itself
        # once resigned).
        deadline = time.monotonic() + 3.0
        while not election.done() and time.monotonic() < deadline:
            election.cancel()
            await asyncio.wait([election], timeout=0.1)
        await rpc.mark_serving(health, SERVICES, False)
        await self.hub.close()
        await server.stop(0.5)
        self._served_out = True

    async def _release(self, server: grpc.aio.Server, health: Any) -> None:
        """Stop serving, then close every channel (peers, etcd), whatever fails first.

        Run to its end even when cancelled again (servers and tests cancel a replica
        every 0.5 s until it ends): a channel left open outlives its event loop, and
        grpc finalizes it later from the garbage collector, which can crash the process.
        """
        try:
            if not self._served_out:
                await rpc.mark_serving(health, SERVICES, False)
                await self.hub.close()
                await server.stop(0.5)
        finally:
            try:
                await self.peers.close()
            finally:
                await self.store.close()

    async def _seed_groups(self) -> None:
        """Write the epoch proof key, then configured group definitions, only where etcd has none.

        The key first: the watch then delivers it before any group, so no decision is
        pushed unsigned, even on a cluster's first start.
        """
        value = json.dumps({"key": new_key().hex(), "created_unix_ms": int(time.time() * 1000)})
        if await self._put_absent(self.keys.proof_key, value.encode(), "the epoch proof key"):
            log.info("epoch proof key created")
        for spec in self.cfg.groups:
            put = await self._put_absent(
                self.keys.group(spec.name), spec.model_dump_json().encode(), f"group {spec.name}"
            )
            log.info("group %s: %s", spec.name, "seeded from config" if put else "kept (in etcd)")

    async def _put_absent(self, key: str, value: bytes, what: str) -> bool:
        """Put ``value`` only where etcd has no ``key``, retried until etcd answers; True if put."""
        while True:
            try:
                return (await self.store.txn([Compare.absent(key)], [Put(key, value)])).succeeded
            except StoreError as exc:
                log.info("writing %s failed (%s): retrying", what, exc, extra=RETRYING)
                await asyncio.sleep(0.2)

    async def _refuse_id_in_use(self) -> None:
        """Refuse to start under a replica_id a running replica uses (a copied config): our
        member key would replace its address, and peers, forwards and ``status`` would reach
        one replica under the other's name. A key a killed replica left names an address
        where nobody, or another replica, answers now: that start goes on. So does one etcd
        does not answer yet (checked only here; the election fences every write anyway)."""
        rid = self.cfg.replica_id
        try:
            async with asyncio.timeout(ID_CHECK_S):
                kv, _ = await self.store.get(self.keys.member(rid))
            address = str(json.loads(kv.value)["address"]) if kv is not None else ""
        except (StoreError, TimeoutError, ValueError, KeyError, TypeError):
            return
        if not address or address == self.cfg.advertised:
            return
        try:
            st = await rpc.unary(
                admin_pb2_grpc.PeerStub(self.peers.get(address)).LocalStatus(
                    apb.LocalStatusRequest(), timeout=ID_CHECK_S
                )
            )
        except grpc.aio.AioRpcError:
            return
        if st.replica_id == rid:
            from failover.config_source import ConfigError

            raise ConfigError(
                f"replica_id {rid!r} is in use by the running replica at {address}: "
                "give each replica its own replica_id"
            )

    async def run(self, on_ready: Callable[[Replica], None] | None = None) -> None:
        ping_every_ms, ping_timeout_ms = self.cfg.stream.keepalive_ms()
        server = rpc.make_server(
            max_message_bytes=self.cfg.stream.max_message_bytes,
            max_streams=self.cfg.stream.max_streams,
            keepalive_time_ms=ping_every_ms,
            ping_timeout_ms=ping_timeout_ms,
            # Timing first, so a call the authorization refuses, or whose request does not
            # parse, is timed with its status; requests parsed before the authorization
            # (it names the operator in them); the stray-cancel guard last, so what it
            # answers is timed and counted too.
            interceptors=[
                RpcServerMetrics(self.metrics),
                rpc.ParseRequests(),
                *([AuthzInterceptor(self.denials)] if self.cfg.tls.enabled else []),
                rpc.StrayCancelGuard(),
            ],
        )
        # Per-caller Admin rate limits (admin_limits); refusals counted in .refused.
        self.admin_limits = PerCaller(self.cfg.admin_limits.rate_per_s, self.cfg.admin_limits.burst)
        admin = AdminService(
            replica_id=self.cfg.replica_id,
            store=self.store,
            keys=self.keys,
            view=self.view,
            leader=self.leader,
            local_status=self.local_status,
            peers=self.peers,
            rpc_timeout_s=max(self.cfg.etcd.rpc_timeout_ms / 1000, 0.5),
            etcd_endpoints=self.cfg.etcd.endpoints,
            limits=self.admin_limits,
            urgent=self.hub.urgent,
            seed=self._seed_groups,
            listed=self.mirror.ready.is_set,
        )
        admin_pb2_grpc.add_AdminServicer_to_server(admin, server)
        self.admin = admin
        peer = PeerService(
            local_status=self.local_status,
            accept_health=self.health.accept,
            full_health=self.forwarder.full_state,
            prepare=self._prepare_to_lead,
            tls=self.cfg.tls.enabled,
            denials=self.denials,
        )
        admin_pb2_grpc.add_PeerServicer_to_server(peer, server)
        self.hub.register(server)
        health = rpc.add_health_and_reflection(server, SERVICES)
        self.health_service = health
        self.port = rpc.bind(server, self.cfg.listen, self.cfg.tls)
        await server.start()
        try:  # whatever fails from here (the metrics port, a task) releases the server
            # Once serving (a start that fails says only why, in one line).
            insecure = [
                w
                for w, t in (("server and peer channels", self.cfg.tls), ("etcd client", self.cfg.etcd.tls))
                if not t.enabled
            ]
            if insecure:
                tls.warn_insecure(f"replica {self.cfg.replica_id}'s {' and '.join(insecure)}")
            await self._refuse_id_in_use()
            await rpc.mark_serving(health, SERVICES, True)
            self.telemetry.serve()
            log.info("replica %s serving on %s (port %d)", self.cfg.replica_id, self.cfg.listen, self.port)
            async with asyncio.TaskGroup() as tg:
                children: list[asyncio.Task[Any]] = []

                def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
                    children.append(tg.create_task(coro, name=name))
                    return children[-1]

                spawn(self.mirror.run(), name="mirror")
                spawn(self.loop_lag.run(), name="loop-lag")
                spawn(self.freshness.run(), name="freshness")
                spawn(self._seed_groups(), name="seed")
                spawn(
                    register_forever(
                        self.store,
                        self.keys,
                        self.cfg.replica_id,
                        self.cfg.advertised,
                        self.cfg.election.lease_ttl_s,
                        again=self._refuse_id_in_use,
                    ),
                    name="member",
                )
                spawn(self.hub.run(), name="sync-hub")
                spawn(self.held_check.run(), name="held-epochs")
                spawn(self.metrics.poll_alarms(self.store, ALARM_POLL_S), name="etcd-alarms")
                spawn(keep_near_etcd_leader(self.store, ETCD_LEADER_CHECK_S), name="etcd-leader")
                election: asyncio.Task[Any] | None = None
                try:
                    await self.mirror.ready.wait()
                    election = spawn(self._campaign(), name="election")
                    spawn(self.leader_watch.run(), name="leader-watch")
                    self.ready.set()
                    if on_ready is not None:
                        on_ready(self)
                    await asyncio.Event().wait()  # until stopped (cancelled) or a task fails
                except asyncio.CancelledError:
                    if election is not None:
                        # To its end (bounded inside) through the cancels a stopper repeats.
                        await finish(asyncio.ensure_future(self._hand_over(election, server, health)))
                    # The TaskGroup cancels its children once, and a child that lost that
                    # cancel would keep a SIGTERMed replica running: cancelled until it ends.
                    await cancel_and_wait(children, every_s=0.1)
                    raise
        except BaseExceptionGroup as group:
            # Our id in use by another replica (found on registering again): one line, exit 2.
            conflict = _config_error(group)
            if conflict is not None:
                raise conflict from None
            raise
        finally:
            admin.stopping.set()
            await finish(asyncio.ensure_future(self._release(server, health)))
            if self._owns_telemetry:
                await asyncio.to_thread(self.telemetry.shutdown)
            if self._owns_tracing:
                await asyncio.to_thread(self.tracing.shutdown)
            log.info("replica %s stopped", self.cfg.replica_id)
