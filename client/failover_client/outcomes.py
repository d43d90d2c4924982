"""Outcome bookkeeping shared by the strategy library's relay clients (gRPC and framed).

One home for the promise both clients keep: every message resolves exactly once; an
outcome for a message already resolved is counted, logged and put on ``events`` as a
``duplicate_outcome`` event, never returned.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import OrderedDict

from failover.v1 import sidecar_pb2 as spb

log = logging.getLogger(__name__)

# VenueEvent.kind of the event that reports a second outcome for one message.
DUPLICATE_OUTCOME = "duplicate_outcome"
_RESOLVED_KEPT = 100_000


class OutcomeKind:
    ACKED = spb.OUTCOME_KIND_ACKED
    REJECTED = spb.OUTCOME_KIND_REJECTED
    IN_DOUBT = spb.OUTCOME_KIND_IN_DOUBT
    NO_PATH = spb.OUTCOME_KIND_NO_PATH

    @staticmethod
    def name(kind: int) -> str:
        return spb.OutcomeKind.Name(kind).removeprefix("OUTCOME_KIND_")  # type: ignore[arg-type]


class OutcomeBook:
    """Messages waiting for their outcome, and the kinds recently given (to spot a second one)."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        # Ids unique per strategy across reconnects and restarts: microseconds at connect, then +1.
        self._ids = itertools.count(time.time_ns() // 1000)
        self._pending: dict[int, asyncio.Future[spb.Outcome]] = {}
        self._resolved: OrderedDict[int, int] = OrderedDict()
        self.events: asyncio.Queue[spb.VenueEvent] = asyncio.Queue()
        self.duplicate_outcomes = 0  # outcomes for a message that already had one (a broken promise)
        self.unmatched_outcomes = 0  # outcomes for a message this connection never sent

    def next_id(self) -> int:
        return next(self._ids)

    def _settle(self, fut: asyncio.Future[spb.Outcome], outcome: spb.Outcome) -> None:
        if not fut.done():  # a caller that gave up cancelled its future: nothing to tell
            fut.set_result(outcome)
        self._resolved[outcome.client_msg_id] = outcome.kind
        if len(self._resolved) > _RESOLVED_KEPT:
            self._resolved.popitem(last=False)

    def _settle_all(self, kind: int, reason: str) -> None:
        """Resolve every message still waiting with ``kind`` (the connection is gone)."""
        for msg_id, fut in list(self._pending.items()):
            self._settle(fut, spb.Outcome(client_msg_id=msg_id, kind=kind, reason=reason))  # type: ignore[arg-type]
        self._pending.clear()

    def _on_outcome(self, o: spb.Outcome) -> None:
        mid = o.client_msg_id
        fut = self._pending.pop(mid, None)
        if fut is not None:
            self._settle(fut, o)
            return
        first = self._resolved.get(mid)
        if first is None:
            self.unmatched_outcomes += 1
            log.warning(
                "outcome %s for message %d, which this connection did not send: ignored",
                OutcomeKind.name(o.kind),
                mid,
            )
            return
        # The sidecar promises one outcome per message: a second one is a bug to surface, not hide.
        self.duplicate_outcomes += 1
        detail = {
            "first": OutcomeKind.name(first),
            "second": OutcomeKind.name(o.kind),
            "path": o.path,
            "reason": o.reason,
        }
        log.error(
            "second outcome for message %d: %s after %s (path %r, %s); the first one stands",
            mid,
            detail["second"],
            detail["first"],
            o.path,
            o.reason,
        )
        self.events.put_nowait(
            spb.VenueEvent(
                client_msg_id=mid,
                kind=DUPLICATE_OUTCOME,
                path=o.path,
                client_order_id=o.client_order_id,
                payload=json.dumps(detail).encode(),
            )
        )

    def _refusal(self, mid: int, closing: bool, ended: bool, error: str) -> tuple[int, str] | None:
        """Why ``mid`` is refused before anything is written, or None: the rules both clients share."""
        if closing:
            return spb.OUTCOME_KIND_NO_PATH, "not sent: the client is closed"
        if ended:
            return spb.OUTCOME_KIND_NO_PATH, f"not sent: no stream to the sidecar ({error or 'ended'})"
        if mid in self._pending:
            why = f"not sent: client_msg_id {mid} is already waiting for an outcome"
            return spb.OUTCOME_KIND_REJECTED, why
        return None
