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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from coordinator.commit import (
    Committed,
    Committer,
    Inputs,
    Leadership,
    NotLeader,
    RestoreBlocked,
    StaleInputs,
)
from coordinator.core.model import Stage, TriggerSpec
from coordinator.core.reconcile import Proposal, reconcile, standby_order
from coordinator.store.errors import StoreError
from coordinator.view import ClusterView
from failover.aio import wait_any

log = logging.getLogger(__name__)


class RequestError(Exception):
    """An operator request that cannot be done; ``field`` names the bad input."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "not_found", "invalid", "failed_precondition", "unavailable"


@dataclass
class SwitchRequest:
    group: str
    path: str
    reason: str
    operator: str
    force: bool = False
    received_ns: int = field(default_factory=time.monotonic_ns)
    future: asyncio.Future[Committed] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
    ) -> None:
        self._view = view
        self._committer = committer
        self._retention = history_retention
        self._before_first = before_first_decision
        self._health_policy = health_policy
        self._on_commit = on_commit
        self._requests: asyncio.Queue[SwitchRequest] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.leadership: Leadership | None = None
        self.recent: list[Committed] = []

    def wake(self) -> None:
        """Re-run the decision pass (health changed)."""
        self._wake.set()

    def submit(self, req: SwitchRequest) -> asyncio.Future[Committed]:
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
                req.future.set_result(await self._switch(leadership, req))
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
            g = self._view.groups[group]
            c = self._view.controls.get(group)
            r = self._view.routes.get(group)
            proposal = reconcile(
                group, g.value, c.value if c else None, r.record if r else None, self._view.era.value
            )
            if proposal is not None:
                await self._try(leadership, proposal)
        if self._health_policy is not None:
            for proposal in self._health_policy(self._view):
                await self._try(leadership, proposal)

    async def _try(self, leadership: Leadership, p: Proposal) -> None:
        try:
            trigger = TriggerSpec(kind=p.kind, evidence=p.evidence)  # type: ignore[arg-type]
            await self._commit(leadership, p.group, p.paths, p.reason, trigger, p.stages)
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

    async def _switch(self, leadership: Leadership, req: SwitchRequest) -> Committed:
        for _attempt in range(5):
            g = self._view.groups.get(req.group)
            if g is None:
                raise RequestError("not_found", f"group: unknown group {req.group!r}")
            names = g.value.path_names()
            if req.path not in names:
                raise RequestError(
                    "not_found",
                    f"path: unknown path {req.path!r} in group {req.group!r} (paths: {', '.join(names)})",
                )
            c = self._view.controls.get(req.group)
            if c is not None and c.value.halted and not req.force:
                raise RequestError("failed_precondition", f"group: {req.group!r} is halted; resume it first")
            paths = standby_order(g.value, req.path, None)
            trigger = TriggerSpec(kind="operator", operator=req.operator)
            queued_us = (time.monotonic_ns() - req.received_ns) // 1000
            stages = [Stage(stage="decide", where=leadership.replica_id, duration_us=queued_us)]
            try:
                return await self._commit(
                    leadership, req.group, paths, f"operator switch: {req.reason}", trigger, stages
                )
            except StaleInputs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._view.changed.wait(), 1.0)
        raise RequestError("unavailable", "inputs kept changing; try again")
