"""Fenced commits: the only way the leader writes a decision.

One transaction compares the fencing token (the election key's mod
revision) and the mod revision of every input the decision was computed from
(era, group definition, controls, current route), then writes the route and a
history entry together: one etcd round trip per decision.

No read of the election key precedes it: such a read proves nothing about the
moment of the write (the term can end between the two), while the compare
does. etcd applies a transaction at one revision; ``mod(leader) == token``
holds there only if the key is still as our term's campaign (or the hand-over
to us) wrote it: a key deleted (revoke, expiry, resign) and created again, or
handed over to a successor, has a new, larger mod revision, and nothing else
writes it. So a transaction from a deposed or resigned term always fails, and
its failure branch reads the key, which tells NotLeader from StaleInputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from coordinator.keys import Keys
from coordinator.store.errors import StoreTimeout
from coordinator.store.port import Store
from coordinator.store.types import KV, Compare, Delete, Get, Lease, Put, TxnResult
from coordinator.view import ClusterView
from failover.model.spec import ZERO_EPOCH, DecisionRecord, Epoch, Stage, TriggerSpec

log = logging.getLogger(__name__)


class NotLeader(Exception):
    """Our election key is gone or belongs to a newer term: leadership is over."""


class StaleInputs(Exception):
    """An input changed since the view we decided on: re-read and decide again."""


class RestoreBlocked(Exception):
    """etcd was restored from a snapshot: nothing commits until the era is bumped."""


@dataclass(frozen=True)
class Leadership:
    replica_id: str
    address: str
    token: int
    lease: Lease


def fence(keys: Keys, leadership: Leadership) -> Compare:
    """The compare every write of a term carries: the election key is still its own."""
    return Compare.mod(keys.leader, leadership.token)


def holds(holder: KV | None, leadership: Leadership) -> bool:
    """Whether the election key as read (a failed transaction's read) is still this term's."""
    return holder is not None and holder.mod_revision == leadership.token


@dataclass(frozen=True)
class Inputs:
    era: int
    era_rev: int
    group_rev: int
    control_rev: int
    route_rev: int
    prev: Epoch

    @staticmethod
    def of(view: ClusterView, group: str) -> Inputs:
        g = view.groups.get(group)
        c = view.controls.get(group)
        r = view.routes.get(group)
        return Inputs(
            era=view.era.value,
            era_rev=view.era.mod_revision,
            group_rev=g.mod_revision if g else 0,
            control_rev=c.mod_revision if c else 0,
            route_rev=r.mod_revision if r else 0,
            prev=r.epoch if r else ZERO_EPOCH,
        )


@dataclass(frozen=True)
class Committed:
    record: DecisionRecord
    epoch: Epoch
    commit_us: int


def _log_outcome(txn: asyncio.Future[TxnResult], group: str, leadership: Leadership) -> None:
    if txn.cancelled() or txn.exception() is not None:
        return
    result = txn.result()
    if not result.succeeded and not holds(result.gets[0] if result.gets else None, leadership):
        log.warning(
            "transaction for %s fenced out: token %d is no longer the leader's", group, leadership.token
        )


class Committer:
    def __init__(
        self, store: Store, keys: Keys, view: ClusterView, *, hold_before_commit_ms: int = 0
    ) -> None:
        self._store = store
        self._keys = keys
        self._view = view
        self._hold_s = hold_before_commit_ms / 1000.0

    async def commit(
        self,
        leadership: Leadership,
        group: str,
        paths: list[str],
        reason: str,
        trigger: TriggerSpec,
        inputs: Inputs,
        stages: list[Stage] | None = None,
        trace: tuple[str, str] = ("", ""),
        request_id: str = "",
    ) -> Committed:
        """``trace``: the W3C context (traceparent, tracestate) stored with the decision;
        ``request_id``: the operator request it answers, so a copy reaching a later leader
        is answered from the route instead of committed again."""
        if self._view.restore.detected:
            raise RestoreBlocked(
                f"etcd restore detected ({self._view.restore.detail}): run `failover era bump`"
            )
        started = time.monotonic_ns()
        if self._hold_s:
            log.warning(
                "test hook: holding commit of %s for %.3fs just before its transaction", group, self._hold_s
            )
            # Blocking on purpose: the whole process stands still, as in a GC pause or SIGSTOP,
            # and the transaction goes out first thing when it resumes.
            time.sleep(self._hold_s)  # noqa: ASYNC251
        record = DecisionRecord(
            group=group,
            paths=paths,
            era=inputs.era,
            leader_id=leadership.replica_id,
            reason=reason,
            trigger=trigger,
            decided_at_unix_ms=int(time.time() * 1000),
            stages=stages or [],
            prev=(inputs.prev.era, inputs.prev.revision),
            fencing_token=leadership.token,
            traceparent=trace[0],
            tracestate=trace[1],
            request_id=request_id,
        )
        value = record.model_dump_json().encode()
        k = self._keys
        compares = [
            fence(k, leadership),
            Compare.mod(k.era, inputs.era_rev),
            Compare.mod(k.group(group), inputs.group_rev),
            Compare.mod(k.control(group), inputs.control_rev),
            Compare.mod(k.route(group), inputs.route_rev),
        ]
        puts = [Put(k.route(group), value), Put(k.history(group, inputs.prev), value)]
        reads = [Get(k.leader), Get(k.route(group))]
        try:
            result = await self._send(compares, puts, reads, group, leadership)
        except StoreTimeout as exc:
            # The answer was lost (an etcd leader change, a member that stopped answering):
            # the write may or may not have applied. The same transaction once more, on
            # another member, settles it: the compares let the two apply at most once
            # between them, and a refusal shows whether the route is already ours.
            log.warning(
                "commit of %s: %s: sending the same transaction again to learn its outcome", group, exc
            )
            result = await self._send(compares, puts, reads, group, leadership)
            route = result.gets[1] if len(result.gets) > 1 else None
            if not result.succeeded and route is not None and route.value == value:
                log.info(
                    "commit of %s: the first transaction had applied (revision %d)", group, route.mod_revision
                )
                result = TxnResult(succeeded=True, revision=route.mod_revision, gets=result.gets)
        if not result.succeeded:
            if not holds(result.gets[0] if result.gets else None, leadership):
                raise NotLeader("fenced out: the election key changed")
            raise StaleInputs(f"inputs of {group} changed since they were read")
        commit_us = (time.monotonic_ns() - started) // 1000
        return Committed(record, Epoch(inputs.era, result.revision), commit_us)

    async def _send(
        self, compares: list[Compare], puts: list[Put], reads: list[Get], group: str, leadership: Leadership
    ) -> TxnResult:
        # Shielded: once sent, the outcome is always read and logged, even if the
        # term ends meanwhile (a fenced-out transaction must be visible).
        txn = asyncio.ensure_future(self._store.txn(compares, puts, reads))
        txn.add_done_callback(lambda t: _log_outcome(t, group, leadership))
        return await asyncio.shield(txn)

    async def prune_history(self, leadership: Leadership, group: str, keep: int) -> int:
        """Delete the oldest history entries beyond ``keep`` (fenced like a decision).

        Not on the commit's path: the leader runs it after the reply (LeaderWork).
        """
        keys = sorted(self._view.history_keys.get(group, ()))
        excess = keys[: max(0, len(keys) - keep)]
        if not excess:
            return 0
        result = await self._store.txn([fence(self._keys, leadership)], [Delete(key) for key in excess])
        return len(excess) if result.succeeded else 0
