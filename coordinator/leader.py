"""The leader's work during one term: one decision loop, nothing else writes.

Inputs: operator requests (queued with a future for the reply), view changes
(definitions, controls, era) and health triggers. Every decision goes through
the Committer, so it is fenced, against the inputs it was computed from.

A pass decides on the view as it is; the next pass starts as soon as the view
has moved past the revision the pass started from (so a change that lands
during a pass is never missed) or something woke the loop. A commit that lost
to a concurrent change (StaleInputs) is decided again on the newer view. On
NotLeader the term ends; nothing a caller does (giving up on its request, its
deadline passing) touches the term: the reply is simply dropped.

Every decision is traced: ``failover.decide`` (for a health decision: the
report's arrival here -> commit begins, a child of the report's span; for an
operator's or a control's, a trace of its own) and ``failover.commit`` under
it (the fenced transaction), whose context is stored with the decision so
every replica's push and every host's apply join the trace. The commit's log
line carries the trace id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.trace import Tracer

from coordinator.commit import (
    Committed,
    Committer,
    Inputs,
    Leadership,
    NotLeader,
    RestoreBlocked,
    StaleInputs,
)
from coordinator.core.reconcile import Proposal, reconcile
from coordinator.keys import Keys
from coordinator.metrics import CoordinatorMetrics
from coordinator.operator_requests import (
    HealthGuard,
    OperatorRequest,
    RequestError,
    check_switch,
    new_controls,
    outcome_unknown,
    switch_trigger,
    validate,
    wait_view,
    write_controls,
)
from coordinator.store.errors import NoSpace, StoreError, StoreTimeout
from coordinator.store.port import Store
from coordinator.view import ClusterView
from failover.aio import cancel_and_wait, wait_any
from failover.model.spec import Stage, TriggerSpec
from failover.telemetry import tracing

log = logging.getLogger(__name__)


# A policy hook: given the view, returns proposals driven by health (issue: policy).
HealthPolicy = Callable[[ClusterView], list[Proposal]]
Reply = tuple[str, Committed | None]

# How long a pass that lost to StaleInputs waits for the view to move before deciding again.
STALE_RETRY_S = 1.0
ANSWERS_KEPT = 1024  # successful answers remembered by request id (copies arriving late)
# Bound on one history prune (it runs after the reply; a slow one is retried after the next commit).
PRUNE_TIMEOUT_S = 2.0


class TermEnded(RequestError):
    """The term ended with the request not decided and nothing of it written (still queued,
    or, after a graceful stop, its switch refused by the fence): the replica that took it
    passes it to the next leader rather than failing it. A deposed leader's (frozen,
    lease expired) switch refused by the fence fails instead: it may be long stale."""

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)


def _reply(req: OperatorRequest, result: Reply | None = None, error: BaseException | None = None) -> None:
    """Answer a request unless its caller already gave up (a cancelled future takes no answer)."""
    if req.future.done():
        return
    if error is not None:
        req.future.set_exception(error)
    else:
        req.future.set_result(result)  # type: ignore[arg-type]


def _what(req: OperatorRequest) -> tuple[str, ...]:
    """What a request asks for: copies of one request id must ask for the same."""
    return (req.action, req.group, req.path, str(req.force))


class LeaderWork:
    def __init__(
        self,
        view: ClusterView,
        committer: Committer,
        *,
        history_retention: int,
        before_first_decision: Callable[[], Awaitable[None]] | None = None,
        health_policy: HealthPolicy | None = None,
        store: Store | None = None,
        keys: Keys | None = None,
        guard: HealthGuard | None = None,
        health_in_hand: Callable[[], bool] = lambda: False,
    ) -> None:
        """``health_in_hand``: the term began with health collected beforehand (a graceful
        hand-over prepared it), enough for guard rails before the term's own collection."""
        self._store = store
        self._health_in_hand = health_in_hand
        self._keys = keys
        self.guard = guard
        self._view = view
        self._committer = committer
        self._retention = history_retention
        self._before_first = before_first_decision
        self._health_policy = health_policy
        self._requests: asyncio.Queue[OperatorRequest] = asyncio.Queue()
        self._submitted = 0  # requests queued so far: a pass gives way when it moves
        self._wake = asyncio.Event()
        self._stale = False  # a commit of this pass lost to a concurrent change
        self._gathered = True  # this term's health is collected (set per term in run)
        self._stood_down = False  # the lease was given up on purpose (graceful stop)
        self._settled = asyncio.Event()  # set while no decision pass runs
        self._settled.set()
        self.leadership: Leadership | None = None
        # Set (and replaced) whenever ``leadership`` changes: requests waiting for a
        # leader wake when this replica's term begins, not at the next view change.
        self.leadership_changed = asyncio.Event()
        self.recent: list[Committed] = []
        # Copies of one request (replicas forward each with its id): the copy queued or
        # running per id, and the last successful answers, so each runs at most once.
        self._live: dict[str, OperatorRequest] = {}
        self._answered: OrderedDict[str, tuple[tuple[str, ...], Reply]] = OrderedDict()
        # History pruning, off the commit -> reply path: at most one per group in flight.
        self._prunes: dict[str, asyncio.Task[None]] = {}
        self._prune_again: set[str] = set()
        self._prune_at: dict[str, int] = {}  # per group: the view revision a prune waits for
        # Per group: the inputs (spec, controls, route) and era it was last found settled on.
        self._reconciled: dict[str, tuple[tuple[object, object, object], int]] = {}
        self.metrics: CoordinatorMetrics | None = None  # set by the replica
        self.tracer: Tracer = tracing.unexported()  # the replica sets its own

    def _set_leadership(self, leadership: Leadership | None) -> None:
        self.leadership = leadership
        if leadership is not None and self.metrics is not None:
            self.metrics.term_began()
        self.leadership_changed.set()
        self.leadership_changed = asyncio.Event()

    def stand_down(self) -> None:
        """A graceful stop, before the lease is revoked: nothing is started here any more
        (requests arriving or still queued go to the next leader; no decision of its own),
        so no write of this term races the hand-over; a commit already in flight lands or
        is refused (see ``settle``), and a long pass stops after it. The term's work ends
        when it is cancelled."""
        self._stood_down = True
        self._set_leadership(None)
        self._wake.set()  # hands the queue on now

    async def settle(self, timeout: float) -> None:
        """Until no pass is running (a commit in flight has its answer), at most ``timeout``."""
        await wait_any(self._settled.wait(), timeout=timeout)

    def wake(self) -> None:
        """Re-run the decision pass (health changed)."""
        self._wake.set()

    def submit(self, req: OperatorRequest) -> asyncio.Future[Reply]:
        """Queue a request; a copy of one queued, running or answered here shares its outcome."""
        rid = req.request_id
        if rid:
            answered = self._answered.get(rid)
            first = self._live.get(rid)
            known = answered[0] if answered is not None else _what(first) if first is not None else None
            if known is not None and known != _what(req):
                req.future.set_exception(
                    RequestError("invalid", f"request id {rid!r} was already used for a different request")
                )
                return req.future
            if answered is not None:
                req.future.set_result(answered[1])
                return req.future
            if first is not None:
                first.copies.append(req)
                return req.future
            self._live[rid] = req
        self._requests.put_nowait(req)
        self._submitted += 1
        self._wake.set()
        return req.future

    def _answer(
        self, req: OperatorRequest, result: Reply | None = None, error: BaseException | None = None
    ) -> None:
        """Answer a request and every copy of it; remember a success for later copies."""
        rid = req.request_id
        if rid and self._live.get(rid) is req:
            del self._live[rid]
            if error is None and result is not None:
                self._answered[rid] = (_what(req), result)
                while len(self._answered) > ANSWERS_KEPT:
                    self._answered.popitem(last=False)
        for r in (req, *req.copies):
            _reply(r, result, error)

    async def run(self, leadership: Leadership) -> None:
        self._stood_down = False
        self._reconciled.clear()  # (only groups that still exist get back in)
        self._set_leadership(leadership)
        self._gathered = self._before_first is None
        gather = asyncio.create_task(self._gather(), name="leader-gather-health")
        try:
            await self._catch_up(leadership.token)
            # A term that ended between a commit and its prune left history over retention.
            for group, keys in self._view.history_keys.items():
                if len(keys) > self._retention:
                    self._prune_later(leadership, group)
            while True:
                started_at = self._view.revision
                self._wake.clear()
                self._stale = False
                self._settled.clear()
                try:
                    await self._pass(leadership)
                finally:
                    self._settled.set()
                await self._until_moved(started_at)
        finally:
            await cancel_and_wait([gather, *self._prunes.values()])
            self._prunes.clear()
            self._prune_again.clear()
            self._prune_at.clear()
            self._set_leadership(None)
            ended = TermEnded("leadership ended; retry")
            while not self._requests.empty():
                self._answer(self._requests.get_nowait(), error=ended)

    async def _gather(self) -> None:
        """Collect health (bounded by health.collect_timeout_ms), then run a full pass.

        Meanwhile the loop already serves what health does not decide: operator
        requests that consult no guard rail (a forced switch, pause, halt...) commit at
        once, so a hand-over is not held up by the slowest replica's answer.
        """
        if self._before_first is not None:
            try:
                await self._before_first()
            except Exception:  # hosts stay unknown (never down); the term goes on
                log.exception("collecting health for the new term failed")
        self._gathered = True
        self._wake.set()

    def _needs_health(self, req: OperatorRequest) -> bool:
        """Requests whose guard rails read the health table (a switch, a drain) wait for it."""
        return not req.force and req.action in ("switch", "drain")

    async def _until_moved(self, revision: int) -> None:
        """Until the view is past ``revision`` or the loop is woken; bounded after a lost commit."""
        timeout = STALE_RETRY_S if self._stale else None
        while self._view.revision == revision and not self._wake.is_set():
            if not await wait_any(self._view.changed.wait(), self._wake.wait(), timeout=timeout):
                return  # the view did not move after a lost commit: decide again anyway

    async def _catch_up(self, token: int) -> None:
        """Decide only on a view that holds everything written before our election.

        ``token`` is the revision of our own campaign's put, so a view at ``token - 1``
        misses nothing but our own key: waiting for the watch to bring that back too
        would add a watch delivery to every hand-over.
        """
        while self._view.revision < token - 1:
            await self._view.changed.wait()

    async def _pass(self, leadership: Leadership) -> None:
        held: list[OperatorRequest] = []
        answered = False
        while not self._requests.empty():
            req = self._requests.get_nowait()
            answered = True
            if all(r.future.done() for r in (req, *req.copies)):
                self._answer(req, error=TermEnded("every caller gave up"))  # forgets it
                continue  # the callers gave up before we got to it
            if self._stood_down:
                self._answer(req, error=TermEnded("leader stopping; passed to the next"))
                continue
            if not self._gathered and self._needs_health(req) and not self._health_in_hand():
                held.append(req)  # answered once health is gathered (that wakes the loop)
                continue
            try:
                self._answer(req, await self._operator(leadership, req))
            except RequestError as exc:
                self._answer(req, error=exc)
            except StoreTimeout as exc:
                failed = (
                    outcome_unknown(req, str(exc)) if req.writing else RequestError("unavailable", str(exc))
                )
                self._answer(req, error=failed)
            except (RestoreBlocked, StoreError) as exc:
                self._answer(req, error=RequestError("unavailable", str(exc)))
            except NotLeader as exc:
                # A switch refused by the fence wrote nothing; a control may have been written.
                msg = f"leadership lost: {exc}"
                handed = self._stood_down and req.action == "switch"
                self._answer(req, error=TermEnded(msg) if handed else RequestError("unavailable", msg))
                raise
            finally:
                ended = "leadership ended while its write was in flight"
                self._answer(
                    req,
                    error=outcome_unknown(req, ended)
                    if req.writing
                    else RequestError("unavailable", "leadership ended; retry"),
                )
        for req in held:
            self._requests.put_nowait(req)
        # A pass may hold hundreds of commits (the first leader seeding every group, an era
        # bump, a line dying under many groups): a call that arrives meanwhile goes next,
        # after the commit in flight, and the next pass goes on from there.
        seen = self._submitted
        if answered:
            # Let the callers' coroutines send their replies before the rest of the pass
            # (reconcile and policy over every group: CPU that grows with the groups).
            await asyncio.sleep(0)
        if not self._gathered or self._stood_down:
            return  # no decision of its own before the new term knows the fleet's health
        # Checked after each commit, so every pass makes progress however busy operators are.
        for group in sorted(self._view.groups):
            proposal = self._reconcile(group)
            if proposal is not None:
                await self._try(leadership, proposal, Inputs.of(self._view, group))
                if self._submitted != seen or self._stood_down:
                    return  # (submit woke the loop; a graceful stop waits for this commit only)
        for proposal, inputs in self._policy():
            await self._try(leadership, proposal, inputs)
            if self._submitted != seen or self._stood_down:
                return

    def _policy(self, group: str | None = None) -> list[tuple[Proposal, Inputs]]:
        """The health policy's proposals, each with the inputs it was computed from (same view)."""
        if self._health_policy is None:
            return []
        return [
            (p, Inputs.of(self._view, p.group))
            for p in self._health_policy(self._view)
            if group is None or p.group == group
        ]

    def _reconcile(self, group: str) -> Proposal | None:
        """``reconcile`` is pure and the view's values are immutable and replaced when they
        change: a group whose inputs are the very objects it was found settled on is still
        settled, so a pass after a commit touches the groups that changed, not all of them."""
        g = self._view.groups[group]
        c = self._view.controls.get(group)
        r = self._view.routes.get(group)
        inputs = (g.value, c.value if c else None, r.record if r else None)
        era = self._view.era.value
        settled = self._reconciled.get(group)
        if settled is not None and settled[1] == era:
            was = settled[0]
            if was[0] is inputs[0] and was[1] is inputs[1] and was[2] is inputs[2]:
                return None
        proposal = reconcile(group, *inputs, era)
        if proposal is None:
            self._reconciled[group] = (inputs, era)
        else:
            self._reconciled.pop(group, None)
        return proposal

    async def _decide_group(
        self,
        leadership: Leadership,
        group: str,
        parent: tracing.Carrier = tracing.NO_CONTEXT,
        req: OperatorRequest | None = None,
    ) -> Committed | None:
        """One group's pass, right after an operator control: reconcile, then policy (e.g. a pin).
        ``parent``: the operator command's trace, which the decision it causes joins; ``req``:
        the control, which a reorder of the group's paths is attributed to (an undrain gives
        no reason of its own: "group definition or controls changed")."""
        proposal = self._reconcile(group)
        if proposal is not None and req is not None and proposal.kind == "seed" and proposal.paths:
            why = f": {req.reason}" if req.reason else ""
            proposal = dataclasses.replace(
                proposal, reason=f"{req.action} by {req.operator}{why}", kind="control", operator=req.operator
            )
        if proposal is not None:
            return await self._commit_proposal(leadership, proposal, Inputs.of(self._view, group), parent)
        done = None
        for p, inputs in self._policy(group):
            done = await self._commit_proposal(leadership, p, inputs, parent)
        return done

    async def _commit_proposal(
        self,
        leadership: Leadership,
        p: Proposal,
        inputs: Inputs,
        parent: tracing.Carrier = tracing.NO_CONTEXT,
    ) -> Committed:
        trigger = TriggerSpec(kind=p.kind, operator=p.operator, evidence=p.evidence)  # type: ignore[arg-type]
        trace = parent if parent[0] else p.trace
        return await self._commit(leadership, p.group, p.paths, p.reason, trigger, inputs, p.stages, trace)

    async def _try(self, leadership: Leadership, p: Proposal, inputs: Inputs) -> None:
        try:
            await self._commit_proposal(leadership, p, inputs)
        except StaleInputs as exc:
            log.info("not committed, view was stale (deciding again): %s", exc)
            self._stale = True
        except RestoreBlocked as exc:
            log.warning("not committed: %s", exc)
        except StoreError as exc:
            log.warning("not committed (%s): will retry", exc)
            if isinstance(exc, NoSpace) and self.metrics is not None:
                self.metrics.nospace()
            await asyncio.sleep(0.1)
            self._wake.set()

    async def _commit(
        self,
        leadership: Leadership,
        group: str,
        paths: list[str],
        reason: str,
        trigger: TriggerSpec,
        inputs: Inputs,
        stages: list[Stage] | None = None,
        parent: tracing.Carrier = tracing.NO_CONTEXT,
        request_id: str = "",
    ) -> Committed:
        attrs = {
            "failover.group": group,
            "failover.replica": leadership.replica_id,
            "failover.trigger": trigger.kind,
            "failover.reason": reason,
            "failover.paths": ",".join(paths) or "(halt)",
        }
        now = time.time_ns()
        decide_us = next((s.duration_us for s in stages or () if s.stage == "decide"), 0)
        decide = self.tracer.start_span(
            "failover.decide",
            context=tracing.extract(*parent),
            start_time=now - decide_us * 1000,
            attributes=attrs,
        )
        decide.end(end_time=now)
        commit = self.tracer.start_span("failover.commit", context=trace.set_span_in_context(decide))
        with trace.use_span(commit, end_on_exit=True):  # its log lines carry the trace id
            done = await self._committer.commit(
                leadership, group, paths, reason, trigger, inputs, stages, tracing.inject(commit), request_id
            )
            commit.set_attribute("failover.epoch", str(done.epoch))
            log.info(
                "committed %s -> %s at epoch %s: %s", group, ",".join(paths) or "(halt)", done.epoch, reason
            )
        self.recent = [*self.recent[-99:], done]
        if self.metrics is not None:
            self.metrics.committed(done.record, done.commit_us)
        self._prune_later(leadership, group, done.epoch.revision)
        return done

    def _prune_later(self, leadership: Leadership, group: str, revision: int = 0) -> None:
        """Prune the group's history in the background, so the reply does not wait for it.

        One prune per group at a time; a commit landing while one runs asks for one more.
        The prune reads the history keys from the view, which learns of a commit from the
        watch after the commit's own answer: it first waits (bounded) until the view holds
        ``revision``, or it would miss the newest entry and leave one over retention.
        """
        self._prune_at[group] = max(self._prune_at.get(group, 0), revision)
        running = self._prunes.get(group)
        if running is not None and not running.done():
            self._prune_again.add(group)
            return
        self._prunes[group] = asyncio.create_task(self._prune(leadership, group), name=f"prune-{group}")

    async def _prune(self, leadership: Leadership, group: str) -> None:
        while True:
            self._prune_again.discard(group)
            try:
                await wait_view(self._view, self._prune_at.get(group, 0), timeout=PRUNE_TIMEOUT_S)
                async with asyncio.timeout(PRUNE_TIMEOUT_S):
                    await self._committer.prune_history(leadership, group, self._retention)
            except (StoreError, TimeoutError) as exc:
                log.info("history prune of %s deferred: %r", group, exc)
            except Exception:  # never ends the term; retried after the next commit
                log.exception("history prune of %s failed", group)
            if group not in self._prune_again:
                return

    async def _operator(self, leadership: Leadership, req: OperatorRequest) -> Reply:
        for _attempt in range(5):
            seen = self._view.revision
            validate(self._view, req)
            if req.action == "switch" and req.request_id:
                r = self._view.routes.get(req.group)
                if r is not None and r.record.request_id == req.request_id:
                    # Committed by a previous leader (a copy of it reached us after it moved).
                    return f"committed at epoch {r.epoch}", Committed(r.record, r.epoch, 0)
            try:
                if req.action == "switch":
                    if self._view.restore.detected:  # the cause to act on, before any guard rail
                        raise RestoreBlocked(
                            f"etcd restore detected ({self._view.restore.detail}): run `failover era bump`"
                        )
                    paths = check_switch(self._view, self.guard, req)
                    trigger, stages = switch_trigger(req, leadership)
                    inputs = Inputs.of(self._view, req.group)
                    reason = f"operator switch: {req.reason}"
                    req.writing = True
                    done = await self._commit(
                        leadership,
                        req.group,
                        paths,
                        reason,
                        trigger,
                        inputs,
                        stages,
                        req.trace,
                        req.request_id,
                    )
                    return f"committed at epoch {done.epoch}", done
                return await self._control(leadership, req)
            except StaleInputs:
                req.writing = False  # answered: that write did not apply
                await self._view_past(seen, STALE_RETRY_S)
        raise RequestError("unavailable", "inputs kept changing; try again")

    async def _view_past(self, revision: int, timeout: float) -> None:
        """Until the view has moved past ``revision`` (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._view.revision == revision:
                    await self._view.changed.wait()

    async def _control(self, leadership: Leadership, req: OperatorRequest) -> Reply:
        assert self._store is not None and self._keys is not None
        spec = new_controls(self._view, self.guard, req)
        req.writing = True
        revision = await write_controls(self._store, self._keys, self._view, leadership, req.group, spec)
        await wait_view(self._view, revision)
        # The decision the control causes, if any, is made now (carrying operator and reason).
        summary = f"{req.action} recorded for {req.group} by {req.operator}"
        try:
            done = await self._decide_group(leadership, req.group, req.trace, req)
        except StaleInputs:
            # The control is recorded; the loop decides again on the newer view.
            self._stale = True
            return summary + "; decision follows", None
        return (summary + (f"; decision at epoch {done.epoch}" if done else "; no decision needed"), done)
