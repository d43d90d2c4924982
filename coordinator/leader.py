"""The leader's work during one term: one decision loop, nothing else writes.

Inputs: operator requests (queued with a future for the reply), view changes
(definitions, controls, era) and health triggers. Every decision goes through
the Committer, so it is fenced. On a stale view it waits for the mirror to
catch up and decides again; on NotLeader the term ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

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
from coordinator.operator_requests import (
    HealthGuard,
    OperatorRequest,
    RequestError,
    check_switch,
    new_controls,
    switch_trigger,
    validate,
    wait_view,
    write_controls,
)
from coordinator.store.errors import StoreError
from coordinator.store.port import Store
from coordinator.view import ClusterView
from failover.aio import wait_any
from failover.model.spec import Stage, TriggerSpec

log = logging.getLogger(__name__)


# A policy hook: given the view, returns proposals driven by health (issue: policy).
HealthPolicy = Callable[[ClusterView], list[Proposal]]
CommitListener = Callable[[Committed], None]


class LeaderWork:
    def __init__(
        self,
        view: ClusterView,
        committer: Committer,
        *,
        history_retention: int,
        before_first_decision: Callable[[], Awaitable[None]] | None = None,
        health_policy: HealthPolicy | None = None,
        on_commit: CommitListener | None = None,
        store: Store | None = None,
        keys: Keys | None = None,
        guard: HealthGuard | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self.guard = guard
        self._view = view
        self._committer = committer
        self._retention = history_retention
        self._before_first = before_first_decision
        self._health_policy = health_policy
        self._on_commit = on_commit
        self._requests: asyncio.Queue[OperatorRequest] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.leadership: Leadership | None = None
        self.recent: list[Committed] = []

    def wake(self) -> None:
        """Re-run the decision pass (health changed)."""
        self._wake.set()

    def submit(self, req: OperatorRequest) -> asyncio.Future[tuple[str, Committed | None]]:
        self._requests.put_nowait(req)
        self._wake.set()
        return req.future

    async def run(self, leadership: Leadership) -> None:
        self.leadership = leadership
        try:
            await self._catch_up(leadership.token)
            if self._before_first is not None:
                await self._before_first()
            while True:
                await self._pass(leadership)
                await wait_any(self._view.changed.wait(), self._wake.wait())
                self._wake.clear()
        finally:
            self.leadership = None
            while not self._requests.empty():
                req = self._requests.get_nowait()
                if not req.future.done():
                    req.future.set_exception(RequestError("unavailable", "leadership ended; retry"))

    async def _catch_up(self, revision: int) -> None:
        """Decide only on a view at least as new as our election."""
        while self._view.revision < revision:
            await self._view.changed.wait()

    async def _pass(self, leadership: Leadership) -> None:
        while not self._requests.empty():
            req = self._requests.get_nowait()
            if req.future.done():
                continue
            try:
                req.future.set_result(await self._operator(leadership, req))
            except RequestError as exc:
                req.future.set_exception(exc)
            except (RestoreBlocked, StoreError) as exc:
                req.future.set_exception(RequestError("unavailable", str(exc)))
            except NotLeader as exc:
                req.future.set_exception(RequestError("unavailable", f"leadership lost: {exc}"))
                raise
            finally:
                if not req.future.done():
                    req.future.set_exception(RequestError("unavailable", "leadership ended; retry"))
        for group in sorted(self._view.groups):
            proposal = self._reconcile(group)
            if proposal is not None:
                await self._try(leadership, proposal)
        if self._health_policy is not None:
            for proposal in self._health_policy(self._view):
                await self._try(leadership, proposal)

    def _reconcile(self, group: str) -> Proposal | None:
        g = self._view.groups[group]
        c = self._view.controls.get(group)
        r = self._view.routes.get(group)
        return reconcile(
            group, g.value, c.value if c else None, r.record if r else None, self._view.era.value
        )

    async def _decide_group(self, leadership: Leadership, group: str) -> None:
        """One group's pass, right after an operator control: reconcile, then policy (e.g. a pin)."""
        proposal = self._reconcile(group)
        if proposal is not None:
            await self._commit_proposal(leadership, proposal)
            return
        if self._health_policy is not None:
            for p in self._health_policy(self._view):
                if p.group == group:
                    await self._commit_proposal(leadership, p)

    async def _commit_proposal(self, leadership: Leadership, p: Proposal) -> Committed:
        trigger = TriggerSpec(kind=p.kind, operator=p.operator, evidence=p.evidence)  # type: ignore[arg-type]
        return await self._commit(leadership, p.group, p.paths, p.reason, trigger, p.stages)

    async def _try(self, leadership: Leadership, p: Proposal) -> None:
        try:
            await self._commit_proposal(leadership, p)
        except StaleInputs as exc:
            log.info("not committed, view was stale: %s", exc)
        except RestoreBlocked as exc:
            log.warning("not committed: %s", exc)
        except StoreError as exc:
            log.warning("not committed (%s): will retry", exc)
            await asyncio.sleep(0.1)
            self._wake.set()

    async def _commit(
        self,
        leadership: Leadership,
        group: str,
        paths: list[str],
        reason: str,
        trigger: TriggerSpec,
        stages: list[Stage] | None = None,
    ) -> Committed:
        inputs = Inputs.of(self._view, group)
        done = await self._committer.commit(leadership, group, paths, reason, trigger, inputs, stages)
        log.info("committed %s -> %s at epoch %s: %s", group, ",".join(paths) or "(halt)", done.epoch, reason)
        self.recent = [*self.recent[-99:], done]
        if self._on_commit is not None:
            self._on_commit(done)
        try:
            await self._committer.prune_history(leadership, group, self._retention)
        except StoreError as exc:
            log.info("history prune of %s deferred: %s", group, exc)
        return done

    async def _operator(self, leadership: Leadership, req: OperatorRequest) -> tuple[str, Committed | None]:
        for _attempt in range(5):
            validate(self._view, req)
            try:
                if req.action == "switch":
                    paths = check_switch(self._view, self.guard, req)
                    trigger, stages = switch_trigger(req, leadership)
                    done = await self._commit(
                        leadership, req.group, paths, f"operator switch: {req.reason}", trigger, stages
                    )
                    return f"committed at epoch {done.epoch}", done
                return await self._control(leadership, req)
            except StaleInputs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._view.changed.wait(), 1.0)
        raise RequestError("unavailable", "inputs kept changing; try again")

    async def _control(self, leadership: Leadership, req: OperatorRequest) -> tuple[str, Committed | None]:
        assert self._store is not None and self._keys is not None
        spec = new_controls(self._view, self.guard, req)
        revision = await write_controls(self._store, self._keys, self._view, leadership, req.group, spec)
        await wait_view(self._view, revision)
        # The decision the control causes, if any, is made now (carrying operator and reason).
        before = self._view.routes.get(req.group)
        await self._decide_group(leadership, req.group)
        after = self._view.routes.get(req.group)
        done = next((c for c in reversed(self.recent) if c.record.group == req.group), None)
        if after is not None and before is not None and after.epoch == before.epoch:
            done = None
        summary = f"{req.action} recorded for {req.group} by {req.operator}"
        return (summary + (f"; decision at epoch {done.epoch}" if done else "; no decision needed"), done)
