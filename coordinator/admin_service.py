"""The Admin gRPC service: translates requests to the core and back, nothing more.

Reads answer from this replica's view; decisions go to the leader (forwarded
when this replica is a follower); definition and era writes are optimistic
transactions any replica may run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from pydantic import ValidationError

from coordinator.etcd_reach import describe, has_quorum
from coordinator.keys import Keys
from coordinator.leader import LeaderWork, TermEnded
from coordinator.limits import peer_host
from coordinator.operator_requests import OperatorRequest, RequestError
from coordinator.peers import PeerChannels
from coordinator.request_checks import (
    FORWARDED_BY_HEADER,
    REQUEST_ID_HEADER,
    caller_trace,
    check_bump_era,
    check_get_status,
    check_history,
    check_put_group,
    check_set_control,
    check_switch,
    forwarded_by,
    request_id,
)
from coordinator.status_summary import decided_of, shape
from coordinator.store.errors import NOSPACE_ACTION, NoSpace, StoreError, is_nospace
from coordinator.store.port import Store
from coordinator.store.types import Compare, Put
from coordinator.urgent import Urgent
from coordinator.view import ClusterView, LeaderKey
from failover import rpc
from failover.aio import wait_any
from failover.log_limit import OUTSIDE_INPUT
from failover.model.convert import decision_pb, group_pb, group_spec
from failover.model.spec import ControlsSpec, DecisionRecord, Epoch, describe_validation_error
from failover.ratelimit import PerCaller
from failover.telemetry import tracing
from failover.tls import peer_uri_or_cn
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

log = logging.getLogger(__name__)

_CODES = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "unknown": grpc.StatusCode.UNKNOWN,
}

# Sends a request to the leader's Admin service with the given deadline (seconds) and
# metadata (the copy's, from _metadata).
Metadata = tuple[tuple[str, str], ...]
Forward = Callable[[admin_pb2_grpc.AdminStub, float, Metadata], Awaitable[apb.ControlResponse]]
LocalStatusFn = Callable[[apb.LocalStatusRequest], apb.ReplicaStatus]
# Actions that name a path: refused without one (INVALID_ARGUMENT "path: required").
_NEEDS_PATH = {"drain", "undrain", "pin"}
# A leader whose server cannot be reached is asked again this often, this many times
# (it may be restarting, or elected a moment before it serves; a dead one loses its lease).
_REFUSED_RETRY_S = 0.1
# Kept from the caller's deadline when waiting for a leader: the answer (with etcd's quorum
# asked, at most 0.5 s) must reach the caller, through a forwarder too, before it gives up.
_ANSWER_MARGIN_S = 1.0
# Kept from the caller's deadline when forwarding: if the leader does not answer, the
# forwarder still has time to ask etcd's members and say why (at most 0.5 s).
_FORWARD_MARGIN_S = 0.6
_MAX_REFUSALS = 50
# A copy that has been forwarded this many times is not forwarded again.
_MAX_HOPS = 3
# How a replica that got a forwarded copy, and does not lead, says so: the forwarder
# re-resolves the leader rather than passing the refusal on.
NOT_LEADER = "not the leader"
_NO_LEADER = "no leader elected right now"
_SHUTTING_DOWN = "replica shutting down"
# A forwarded call answered UNAVAILABLE so is sent again: the replica it went to does not
# lead (any more). gRPC's own words, anywhere in the details: a port that refuses
# connections, and the calls a server holds (or receives) as it stops. Ours, only as the
# whole answer's start: "etcd has no quorum ...: no leader elected right now" is an
# outage to report at once, not a leader to look for again.
_GONE_GRPC = ("failed to connect", "Cancelling all calls", "Server shutdown")
_GONE_OURS = (NOT_LEADER, _NO_LEADER, _SHUTTING_DOWN)
_ACTIONS = {
    apb.CONTROL_ACTION_DRAIN: "drain",
    apb.CONTROL_ACTION_UNDRAIN: "undrain",
    apb.CONTROL_ACTION_PIN: "pin",
    apb.CONTROL_ACTION_UNPIN: "unpin",
    apb.CONTROL_ACTION_PAUSE: "pause",
    apb.CONTROL_ACTION_RESUME: "resume",
    apb.CONTROL_ACTION_HALT: "halt",
}


class AdminService(admin_pb2_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        replica_id: str,
        store: Store,
        keys: Keys,
        view: ClusterView,
        leader: LeaderWork,
        local_status: LocalStatusFn,
        peers: PeerChannels,
        rpc_timeout_s: float,
        leader_wait_s: float = 5.0,
        forward_s: float = 10.0,
        etcd_endpoints: Sequence[str] = (),
        limits: PerCaller | None = None,
        urgent: Urgent | None = None,
        seed: Callable[[], Awaitable[None]] | None = None,
        listed: Callable[[], bool] = lambda: True,
    ) -> None:
        """``listed``: this replica's view holds etcd's first listing (until then every call
        is refused UNAVAILABLE: an empty view would answer "unknown group", "no leader")."""
        self._id = replica_id
        self._listed = listed
        self._store = store
        self._keys = keys
        self._view = view
        self._leader = leader
        self._local_status = local_status
        self._peers = peers
        self._timeout = rpc_timeout_s
        self._leader_wait_s = leader_wait_s
        self._forward_s = forward_s  # a forward's deadline when the caller gave none
        self._etcd_endpoints = list(etcd_endpoints)
        # Writes what a cluster's first start writes, where etcd has none (after an era bump).
        self._seed = seed
        # Per-caller token buckets (admin_limits); None: unlimited.
        self.limits = limits
        # Set when this replica shuts down: waits for a leader end at once.
        self.stopping = asyncio.Event()
        # Operator calls in progress: the replica shares it with its fan-out, which waits.
        self.urgent = urgent or Urgent()

    async def _abort(self, context: grpc.aio.ServicerContext[Any, Any], code: str, message: str) -> None:
        # Bounded: a message echoing a caller's value must fit gRPC's status metadata (16 KiB).
        if len(message) > 2000:
            message = message[:2000] + "... (truncated)"
        await context.abort(_CODES.get(code, grpc.StatusCode.INTERNAL), message)

    async def _refuse_invalid(self, context: grpc.aio.ServicerContext[Any, Any], problem: str | None) -> None:
        """RESOURCE_EXHAUSTED when the caller is over its rate (admin_limits), else
        INVALID_ARGUMENT naming the field, from coordinator.request_checks (before any work)."""
        if self.limits is not None:
            who = peer_uri_or_cn(context) or peer_host(context.peer() or "")
            if not self.limits.allow(who, time.monotonic()):
                log.warning(
                    "rate limited: %s over admin_limits.rate_per_s on replica %s",
                    who,
                    self._id,
                    extra=OUTSIDE_INPUT,
                )
                lim = self.limits
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{who} is over its Admin rate limit ({lim.rate:g}/s, burst {lim.burst:g}) "
                    f"on replica {self._id}; slow down and retry",
                )
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)

    # --- reads -------------------------------------------------------------

    async def _etcd_problem(self, exc: BaseException) -> str:
        """What went wrong talking to etcd, in words an operator can act on."""
        what = str(exc) or type(exc).__name__
        if not self._etcd_endpoints:
            return what
        n = await self._store.members_answering(min(self._timeout, 0.5))
        return f"{describe(n, len(self._etcd_endpoints))} ({what})"

    async def _if_no_quorum(self, context: Any, text: str) -> None:
        """Abort UNAVAILABLE, leading with etcd's state, if etcd has lost its quorum."""
        if self._etcd_endpoints:
            n = await self._store.members_answering(min(self._timeout, 0.5))
            if not has_quorum(n, len(self._etcd_endpoints)):
                await self._abort(context, "unavailable", f"{describe(n, len(self._etcd_endpoints))}: {text}")

    async def _unavailable(self, context: Any, text: str) -> None:
        """Abort UNAVAILABLE, leading with etcd's state when it has lost its quorum
        (the usual reason why no leader is elected or a commit times out); FAILED_PRECONDITION
        when etcd is out of space (a retry cannot succeed before an operator clears it)."""
        if is_nospace(text):
            await self._no_space(context, text, refused_here=True)
        await self._if_no_quorum(context, text)
        if await self._nospace_alarm():  # e.g. no leader: a new term cannot grant its lease
            await self._no_space(context, text, refused_here=False)
        await self._abort(context, "unavailable", text)

    async def _store_failed(self, context: Any, exc: StoreError) -> None:
        """Abort for a failed store call: FAILED_PRECONDITION on NOSPACE, else UNAVAILABLE."""
        if isinstance(exc, NoSpace):
            await self._no_space(context, str(exc), refused_here=True)
        await self._abort(context, "unavailable", f"etcd: {await self._etcd_problem(exc)}")

    async def _no_space(self, context: Any, text: str, refused_here: bool) -> None:
        if refused_here and self._leader.metrics is not None:
            self._leader.metrics.nospace()  # failover_etcd_nospace_errors_total (the alert)
        message = text if is_nospace(text) else f"{NOSPACE_ACTION} ({text})"
        await self._abort(context, "failed_precondition", message)

    async def _nospace_alarm(self) -> bool:
        """Whether etcd has its NOSPACE alarm raised (a read: it answers while writes are refused)."""
        try:
            async with asyncio.timeout(min(self._timeout, 0.5)):
                return "NOSPACE" in await self._store.alarms()
        except (StoreError, TimeoutError):
            return False

    async def _refuse_unlisted(self, context: Any) -> None:
        if not self._listed():
            await self._abort(
                context,
                "unavailable",
                f"replica {self._id} has not read etcd yet (its first listing is under way); "
                "retry another replica",
            )

    async def GetStatus(self, request: apb.GetStatusRequest, context: Any) -> apb.ClusterStatus:
        await self._refuse_unlisted(context)
        await self._refuse_invalid(context, check_get_status(request))
        v = self._view
        if request.group and request.group not in v.groups:
            await self._abort(context, "not_found", f"group: unknown group {request.group!r}")
        local_req = apb.LocalStatusRequest(
            hosts=request.hosts,
            group=request.group,
            host_limit=request.host_limit,
            hosts_after=request.hosts_after,
        )
        out = apb.ClusterStatus(era=v.era.value, revision=v.revision, restore_detected=v.restore.detected)
        if v.leader is not None:
            out.leader.CopyFrom(
                apb.LeaderInfo(
                    replica_id=v.leader.replica_id, address=v.leader.address, fencing_token=v.leader.token
                )
            )
        for name in sorted(v.groups):
            if request.group and name != request.group:
                continue
            g = v.groups[name]
            gs = apb.GroupStatus(definition=group_pb(g.value, g.mod_revision))
            r = v.routes.get(name)
            if r is not None:
                gs.decision.CopyFrom(decision_pb(r.record, r.epoch))
            c = v.controls.get(name)
            gs.controls = _controls_summary(c.value) if c is not None else "none"
            out.groups.append(gs)
        out.replicas.extend(await self._replica_statuses(local_req))
        degraded = {g for r in out.replicas if r.is_leader for g in r.degraded_groups}
        for gs in out.groups:
            gs.degraded = gs.definition.name in degraded
        try:
            async with asyncio.timeout(self._timeout):
                out.alarms.extend(await self._store.alarms())
        except (StoreError, TimeoutError) as exc:
            out.alarms.append(f"UNKNOWN (cannot read alarms: {await self._etcd_problem(exc)})")
        return out

    async def _replica_statuses(self, req: apb.LocalStatusRequest) -> list[apb.ReplicaStatus]:
        others = {rid: m.address for rid, m in self._view.members.items() if rid != self._id}
        # A replica whose lease expired (killed, paused, cut off) is still asked for a while:
        # without it, status showed a healthy-looking cluster of the replicas left.
        gone: dict[str, float] = {}
        for rid, (m, ago) in self._view.recently_gone().items():
            if rid != self._id:
                gone[rid] = ago
                others.setdefault(rid, m.address)

        async def one(rid: str, address: str) -> apb.ReplicaStatus:
            why = (
                f"not registered in etcd for {gone[rid]:.0f} s (its lease expired or was revoked)"
                if rid in gone
                else ""
            )
            try:
                stub = admin_pb2_grpc.PeerStub(self._peers.get(address))
                st: apb.ReplicaStatus = await rpc.unary(stub.LocalStatus(req, timeout=self._timeout))
                if st.sidecars and not st.host_counts:  # a replica that does not shape its answer
                    st = shape(st, req, decided_of(self._view.routes))
                if why:  # it answers, but holds no lease: it cannot lead or be counted on
                    st.reachable = False
                    st.error = why
                return st
            except grpc.aio.AioRpcError as exc:
                error = f"{exc.code().name}: {exc.details()}"
                return apb.ReplicaStatus(
                    replica_id=rid,
                    address=address,
                    reachable=False,
                    error=f"{why}; {error}" if why else error,
                )

        results = await asyncio.gather(*(one(rid, addr) for rid, addr in sorted(others.items())))
        return sorted([self._local_status(req), *results], key=lambda r: r.replica_id)

    async def History(self, request: apb.HistoryRequest, context: Any) -> apb.HistoryResponse:
        await self._refuse_unlisted(context)
        await self._refuse_invalid(context, check_history(request))
        if request.group not in self._view.groups:
            await self._abort(context, "not_found", f"group: unknown group {request.group!r}")
        try:
            kvs, _ = await self._store.get_prefix(self._keys.history_prefix(request.group))
        except StoreError as exc:
            await self._store_failed(context, exc)
            raise
        decisions = []
        for kv in kvs:
            try:
                rec = DecisionRecord.model_validate_json(kv.value)
            except ValidationError:
                continue
            decisions.append(decision_pb(rec, Epoch(rec.era, kv.mod_revision)))
        decisions.sort(key=lambda d: (d.epoch.era, d.epoch.revision), reverse=True)
        limit = request.limit or 50
        return apb.HistoryResponse(decisions=decisions[:limit])

    # --- writes ------------------------------------------------------------

    async def Switch(self, request: apb.SwitchRequest, context: Any) -> apb.ControlResponse:
        await self._refuse_unlisted(context)
        await self._refuse_invalid(context, check_switch(request))
        if not request.group:
            await self._abort(context, "invalid", "group: required")
        if not request.path:
            await self._abort(context, "invalid", "path: required")
        if not request.reason.strip():
            await self._abort(context, "invalid", "reason: required (say why you switch)")
        req = await self._operator_request(request, context, "switch")
        with self.urgent.call():
            return await self._decide(
                context, req, lambda stub, t, md: stub.Switch(request, timeout=t, metadata=md)
            )

    async def _operator_request(
        self, request: apb.SwitchRequest | apb.SetControlRequest, context: Any, action: str
    ) -> OperatorRequest:
        """The core's request for a Switch or a SetControl (the same fields, the caller's
        trace and the request's id)."""
        try:
            rid = request_id(context)
        except ValueError as exc:
            await self._abort(context, "invalid", str(exc))
            raise
        return OperatorRequest(
            request.group,
            request.reason,
            request.operator or "unknown",
            request.force,
            path=request.path,
            action=action,
            trace=caller_trace(context),
            request_id=rid,
        )

    async def _forwarded_by(self, context: Any) -> tuple[str, ...]:
        try:
            return forwarded_by(context)
        except ValueError as exc:
            await self._abort(context, "invalid", str(exc))
            raise

    async def _decide(self, context: Any, req: OperatorRequest, forward: Forward) -> apb.ControlResponse:
        """Run the request here when we lead, else forward it to the leader, re-resolving it
        when leadership moves while we wait on it (a stalled leader loses its key at its TTL).
        A copy is never forwarded back to a replica it came through (``via``): when our view
        names one of them, one of the two views is behind; we give ours a moment to move,
        then say we do not lead, and the forwarder looks again at its own."""
        via = await self._forwarded_by(context)
        md = _metadata(req, (*via, self._id))
        refusals = 0
        while True:
            term = self._leader.leadership
            if term is not None:
                try:
                    return await self._run(context, req)
                except TermEnded as exc:
                    log.info("term ended before %s was decided here (%s): passing it on", req.action, exc)
                    if self._leader.leadership is term:
                        await wait_any(self._leader.leadership_changed.wait(), timeout=1.0)
                    continue
            leader = await self._await_leader(context)
            if leader is not None and (leader.replica_id in via or len(via) >= _MAX_HOPS):
                if await wait_any(self._leader_moved(leader), timeout=_REFUSED_RETRY_S):
                    continue
                await self._abort(
                    context,
                    "unavailable",
                    f"{NOT_LEADER}: replica {self._id} does not lead and will not forward this "
                    f"request again (its view names {leader.replica_id}; came through "
                    f"{', '.join(via)})",
                )
            if leader is not None:
                resp = await self._forward(context, leader, forward, md, retry_gone=refusals < _MAX_REFUSALS)
                refusals += 1
                if resp is not None:
                    return resp
                log.info("leader %s changed while a request waited on it: re-resolving", leader.replica_id)
            elif self._leader.leadership is None:
                await self._unavailable(context, f"{_NO_LEADER}; retry")

    async def _run(self, context: Any, req: OperatorRequest) -> apb.ControlResponse:
        try:
            message, done = await self._leader.submit(req)
        except TermEnded:
            raise  # _decide passes it to the next leader
        except RequestError as exc:
            if exc.code == "unavailable":
                await self._unavailable(context, str(exc))
            await self._abort(context, exc.code, str(exc))
            raise
        resp = apb.ControlResponse(message=message)
        if done is not None:
            resp.decision.CopyFrom(decision_pb(done.record, done.epoch))
        return resp

    async def _forward(
        self, context: Any, leader: LeaderKey, forward: Forward, md: Metadata, retry_gone: bool = False
    ) -> apb.ControlResponse | None:
        """The leader's answer, or None when its term ended (or we stop) before it answered,
        or (``retry_gone``) when it went away under the call: its server could not be
        reached (restarting, or elected a moment before it serves), stopped and cancelled
        the call, or it says it does not lead. A leader that stops hands over; our view may
        lag that hand-over, so it is asked again (or its successor, once our view moves)
        shortly."""
        remaining = context.time_remaining()
        if remaining is None:
            timeout = self._forward_s
        else:
            # Keep time to say why if the leader does not answer (an etcd outage).
            timeout = max(
                0.0, remaining - _FORWARD_MARGIN_S if remaining > 2 * _FORWARD_MARGIN_S else remaining
            )
        call = asyncio.ensure_future(
            rpc.unary(
                forward(
                    admin_pb2_grpc.AdminStub(self._peers.for_term(leader.address, leader.token)), timeout, md
                )
            )
        )
        moved = asyncio.ensure_future(self._leader_moved(leader))
        try:
            await asyncio.wait([call, moved], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # This handler was cancelled (its client gave up): the forward is abandoned, not
            # left to fail at its own deadline with nobody to read the error.
            call.cancel()
            call.add_done_callback(_settled)
            raise
        finally:
            moved.cancel()
        if not call.done():
            call.cancel()
            await asyncio.wait([call])  # settles it (no answer to retrieve); our own cancel still propagates
            if self.stopping.is_set():
                await self._abort(context, "unavailable", f"{_SHUTTING_DOWN}; retry another")
            return None
        try:
            return call.result()
        except rpc.ChannelClosed:
            # Its peer channel was replaced under it (the leader's address stopped answering):
            # the leader may still hold a copy, which a forward on the new channel joins.
            log.info(
                "channel to leader %s closed under a forwarded call: sending it again", leader.replica_id
            )
            return None
        except grpc.aio.AioRpcError as exc:
            remaining = context.time_remaining()
            if (
                retry_gone
                and _leader_gone(exc)
                and not self.stopping.is_set()
                and (remaining is None or remaining > 2 * _REFUSED_RETRY_S)
            ):
                log.debug(  # _decide logs the re-resolution
                    "leader %s went away under a forwarded call (%s: %s): asking again",
                    leader.replica_id,
                    exc.code().name,
                    exc.details(),
                )
                await wait_any(self._leader_moved(leader), timeout=_REFUSED_RETRY_S)
                return None
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                await self._if_no_quorum(
                    context, f"leader {leader.replica_id} did not answer in {timeout:.1f}s"
                )
            await context.abort(exc.code(), f"{exc.details()} (via leader {leader.replica_id})")
            raise

    async def _leader_moved(self, leader: LeaderKey) -> None:
        """Until the view shows another term than ``leader``'s (or none), or we stop."""
        while not self.stopping.is_set():
            now = self._view.leader
            if now is None or now.token != leader.token:
                return
            await wait_any(self._view.changed.wait(), self.stopping.wait())

    async def _await_leader(self, context: Any) -> LeaderKey | None:
        """The leader, waiting a bounded time through an election in progress (and never so long
        that the caller's deadline passes before it hears why there is none)."""
        wait = self._leader_wait_s
        caller = context.time_remaining()
        if caller is not None:
            wait = max(0.0, min(wait, caller - _ANSWER_MARGIN_S))
        start = time.monotonic()
        deadline = start + wait
        # Elected by etcd, our term about to begin (it gathers health first, a few ms): wait for
        # it up to half of what the caller has left (the other half still explains a term that
        # does not begin), not only beyond the full margin: answering "no leader" sent the
        # forwarder, whose view names us, after a leader change that never comes.
        own_deadline = start + (
            max(0.0, min(self._leader_wait_s, caller / 2)) if caller is not None else wait
        )
        while True:
            leader = self._view.leader
            if leader is not None and leader.address and leader.replica_id != self._id:
                return leader
            if self._leader.leadership is not None:
                return None
            elected_here = leader is not None and leader.replica_id == self._id
            remaining = (max(deadline, own_deadline) if elected_here else deadline) - time.monotonic()
            if remaining <= 0:
                return None
            if self.stopping.is_set():
                return None  # our view no longer moves: let the client retry another replica
            # Our own term may begin without a view change (the key was already seen).
            await wait_any(
                self._view.changed.wait(),
                self._leader.leadership_changed.wait(),
                self.stopping.wait(),
                timeout=remaining,
            )

    async def SetControl(self, request: apb.SetControlRequest, context: Any) -> apb.ControlResponse:
        await self._refuse_unlisted(context)
        await self._refuse_invalid(context, check_set_control(request))
        action = _ACTIONS.get(request.action)
        if action is None:
            await self._abort(
                context, "invalid", "action: required (drain, undrain, pin, unpin, pause, resume, halt)"
            )
            raise AssertionError
        if not request.group:
            await self._abort(context, "invalid", "group: required")
        if action in _NEEDS_PATH and not request.path:
            await self._abort(context, "invalid", "path: required")
        req = await self._operator_request(request, context, action)
        with self.urgent.call():
            return await self._decide(
                context, req, lambda stub, t, md: stub.SetControl(request, timeout=t, metadata=md)
            )

    async def PutGroup(self, request: apb.PutGroupRequest, context: Any) -> apb.PutGroupResponse:
        await self._refuse_unlisted(context)
        await self._refuse_invalid(context, check_put_group(request))
        try:
            spec = group_spec(request.definition, with_policy=request.definition.HasField("policy"))
        except ValidationError as exc:
            await self._abort(context, "invalid", describe_validation_error(exc, "definition"))
            raise
        key = self._keys.group(spec.name)
        if request.create_only:
            cmp = Compare.absent(key)
        elif request.expected_mod_revision:
            cmp = Compare.mod(key, request.expected_mod_revision)
        else:
            cur = self._view.groups.get(spec.name)
            cmp = Compare.mod(key, cur.mod_revision if cur else 0)
        try:
            res = await self._store.txn([cmp], [Put(key, spec.model_dump_json().encode())])
        except StoreError as exc:
            await self._store_failed(context, exc)
            raise
        if not res.succeeded:
            what = "already exists" if request.create_only else "changed since it was read; re-read and retry"
            await self._abort(context, "failed_precondition", f"definition: group {spec.name!r} {what}")
        return apb.PutGroupResponse(definition=group_pb(spec, res.revision))

    async def BumpEra(self, request: apb.BumpEraRequest, context: Any) -> apb.BumpEraResponse:
        await self._refuse_unlisted(context)
        await self._refuse_invalid(context, check_bump_era(request))
        kv, _ = await self._read(context, self._keys.era)
        era = int(json.loads(kv.value)["era"]) if kv else 0
        if request.expected_era and request.expected_era != era:
            await self._abort(
                context, "failed_precondition", f"expected_era: era is {era}, not {request.expected_era}"
            )
        value = json.dumps(
            {
                "era": era + 1,
                "operator": request.operator,
                "reason": request.reason,
                "at_unix_ms": int(time.time() * 1000),
            }
        ).encode()
        try:
            res = await self._store.txn(
                [Compare.mod(self._keys.era, kv.mod_revision if kv else 0)], [Put(self._keys.era, value)]
            )
        except StoreError as exc:
            await self._store_failed(context, exc)
            raise
        if not res.succeeded:
            await self._abort(context, "failed_precondition", "era changed concurrently; retry")
        with tracing.current(tracing.remote(caller_trace(context))):  # the line carries the CLI's trace id
            log.warning("era bumped to %d by %s: %s", era + 1, request.operator, request.reason)
        if self._seed is not None:
            # A bump follows a restore, or etcd's data lost: what a first start writes (the
            # proof key, the configured groups) may be gone, and nothing else writes it back.
            try:
                await asyncio.wait_for(self._seed(), max(self._timeout, 2.0))
            except TimeoutError:
                log.warning(
                    "era %d: the proof key and groups not written back yet (etcd did not answer)", era + 1
                )
        return apb.BumpEraResponse(era=era + 1)

    async def _read(self, context: Any, key: str) -> Any:
        try:
            return await self._store.get(key)
        except StoreError as exc:
            await self._store_failed(context, exc)
            raise


def _settled(fut: asyncio.Future[Any]) -> None:
    """Reads an abandoned call's outcome, so an error it ended with is not logged as unretrieved."""
    if not fut.cancelled():
        fut.exception()


def _leader_gone(exc: grpc.aio.AioRpcError) -> bool:
    """The leader a call was forwarded to is not there to answer it (the request id makes
    sending it again safe): its port refuses connections, its server stopped under the
    call, or it says it does not lead (or is shutting down)."""
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.CANCELLED:
        return True
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (
        any(g in details for g in _GONE_GRPC) or details.startswith(_GONE_OURS)
    )


def _metadata(req: OperatorRequest, via: tuple[str, ...]) -> Metadata:
    """What a forwarded copy carries: the request's id, the replicas it went through and
    the caller's trace context."""
    md: Metadata = (
        (REQUEST_ID_HEADER, req.request_id),
        (FORWARDED_BY_HEADER, ",".join(via)),
    )
    tp, ts = req.trace
    if tp:
        md += (("traceparent", tp),)
    if tp and ts:
        md += (("tracestate", ts),)
    return md


def _controls_summary(c: ControlsSpec) -> str:
    parts = []
    if c.halted:
        parts.append("HALTED")
    if c.paused:
        parts.append("paused")
    if c.pinned:
        parts.append(f"pinned={c.pinned}")
    if c.drained:
        parts.append(f"drained={','.join(c.drained)}")
    return " ".join(parts) or "none"
