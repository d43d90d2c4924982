"""``failover.push``: one span per committed decision per replica, from its arrival in this
replica's view to the acks of the sidecars that were connected for its group.

The span is a child of the leader's commit span (its context is stored with the
decision in etcd); its own context replaces it in the decision this replica
encodes once for all its sidecars, so each host's apply span is a child of the
push that delivered it. It ends when every sidecar it waits for has acked the
epoch (or a newer one), disconnected, or when a newer decision of the group
supersedes it, and records the first ``ACK_EVENTS`` acks as events (the SDK's default
event limit per span: it would build and then drop the rest) and counts them all, with the
slowest. Nothing here runs per message: only per decision and per ack of a decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.trace import Span, Tracer

from failover.model.spec import DecisionRecord, Epoch
from failover.telemetry import tracing

ACK_EVENTS = 128  # OpenTelemetry's default OTEL_SPAN_EVENT_COUNT_LIMIT


@dataclass
class _Push:
    span: Span
    epoch: Epoch
    waiting: dict[int, str]  # session id -> host id
    acked: int = 0
    slowest_us: int = -1  # the largest push -> ack (-1: none measured)


class PushTraces:
    def __init__(self, tracer: Tracer, replica_id: str) -> None:
        self.tracer = tracer
        self._id = replica_id
        self._pushes: dict[str, _Push] = {}

    def started(
        self, rec: DecisionRecord, epoch: Epoch, waiting: Iterable[tuple[int, str]]
    ) -> tracing.Carrier:
        """A push of ``rec`` at ``epoch`` to the sessions ``waiting`` (id, host); returns the
        context the encoded decision carries down."""
        self._end(rec.group, superseded=True)
        span = self.tracer.start_span(
            "failover.push",
            context=tracing.extract(rec.traceparent, rec.tracestate),
            attributes={
                "failover.group": rec.group,
                "failover.replica": self._id,
                "failover.epoch": str(epoch),
                "failover.paths": ",".join(rec.paths) or "(halt)",
            },
        )
        push = _Push(span, epoch, dict(waiting))
        span.set_attribute("failover.sidecars", len(push.waiting))
        self._pushes[rec.group] = push
        if not push.waiting:
            self._end(rec.group)
        return tracing.inject(span)

    def acked(self, sid: int, group: str, epoch: Epoch, push_to_ack_us: int | None) -> None:
        push = self._pushes.get(group)
        if push is None or epoch < push.epoch or sid not in push.waiting:
            return
        host = push.waiting.pop(sid)
        push.acked += 1
        if push_to_ack_us is not None and push_to_ack_us > push.slowest_us:
            push.slowest_us = push_to_ack_us
        if push.acked <= ACK_EVENTS:
            attrs: dict[str, str | int] = {"failover.host": host}
            if push_to_ack_us is not None:
                attrs["failover.push_to_ack_us"] = push_to_ack_us
            push.span.add_event("ack", attrs)
        if not push.waiting:
            self._end(group)

    def gone(self, sid: int) -> None:
        """A session ended: no push waits for it any more."""
        for group, push in list(self._pushes.items()):
            if push.waiting.pop(sid, None) is not None and not push.waiting:
                self._end(group)

    def close(self) -> None:
        for group in list(self._pushes):
            self._end(group)

    def _end(self, group: str, superseded: bool = False) -> None:
        push = self._pushes.pop(group, None)
        if push is None:
            return
        push.span.set_attribute("failover.acked", push.acked)
        if push.slowest_us >= 0:
            push.span.set_attribute("failover.push_to_ack_max_us", push.slowest_us)
        if push.acked > ACK_EVENTS:
            push.span.set_attribute("failover.ack_events_dropped", push.acked - ACK_EVENTS)
        if push.waiting:
            push.span.set_attribute("failover.unacked", len(push.waiting))
            if superseded:
                push.span.set_attribute("failover.superseded", True)
        push.span.end()
