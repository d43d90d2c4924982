"""Translation between stored models and failover.v1 messages (one place)."""

from __future__ import annotations

from failover.model.spec import DecisionRecord, Epoch, GroupSpec, PolicySpec, Stage
from failover.v1 import types_pb2 as pb

# The one map between warmth names (GroupSpec, the sidecar's Warmth) and the protobuf enum.
WARMTH_TO_PB = {
    "logged_on": pb.WARMTH_LOGGED_ON,
    "connected": pb.WARMTH_CONNECTED,
    "cold": pb.WARMTH_COLD,
}
WARMTH_FROM_PB = {v: k for k, v in WARMTH_TO_PB.items()}


def warmth_of(value: int) -> str:
    """The model's warmth for a wire value: unset means the default; an undefined number
    is passed through as text so validation refuses it naming the field."""
    if value == pb.WARMTH_UNSPECIFIED:
        return "logged_on"
    known = {int(k): v for k, v in WARMTH_FROM_PB.items()}
    return known.get(value, f"undefined Warmth value {value}")


def epoch_pb(e: Epoch) -> pb.Epoch:
    return pb.Epoch(era=e.era, revision=e.revision)


def epoch_of(e: pb.Epoch) -> Epoch:
    return Epoch(e.era, e.revision)


def decision_pb(rec: DecisionRecord, epoch: Epoch) -> pb.Decision:
    return pb.Decision(
        group=rec.group,
        paths=rec.paths,
        epoch=epoch_pb(epoch),
        leader_id=rec.leader_id,
        reason=rec.reason,
        trigger=pb.Trigger(
            kind=rec.trigger.kind, operator=rec.trigger.operator, evidence=rec.trigger.evidence
        ),
        decided_at_unix_ms=rec.decided_at_unix_ms,
        fencing_token=rec.fencing_token,
        traceparent=rec.traceparent,
        tracestate=rec.tracestate,
        stages=[pb.StageTiming(stage=s.stage, where=s.where, duration_us=s.duration_us) for s in rec.stages],
    )


def group_pb(spec: GroupSpec, mod_revision: int, site: str | None = None) -> pb.GroupDefinition:
    """With ``site``: each path's endpoint resolved for that site (what a sidecar gets)."""
    pol = spec.policy
    return pb.GroupDefinition(
        name=spec.name,
        paths=[
            pb.Path(
                name=p.name,
                transport=p.transport,
                endpoint=p.endpoint_for(site) if site is not None else "",
                warmth=WARMTH_TO_PB[p.warmth],
                endpoints=p.endpoints,
            )
            for p in spec.paths
        ],
        policy=pb.GroupPolicy(
            local_failover=pol.local_failover,
            failback_hold_down_ms=pol.failback_hold_down_ms,
            min_dwell_ms=pol.min_dwell_ms,
            fail_hosts=pol.fail_hosts,
            fail_fraction=pol.fail_fraction,
            auto_failback=pol.auto_failback,
            failback_hold_s=pol.failback_hold_s,
            min_hosts_up=pol.min_hosts_up,
            fraction_up=pol.fraction_up,
            slow_threshold_ms=pol.slow_threshold_ms,
        ),
        mod_revision=mod_revision,
    )


def group_spec(msg: pb.GroupDefinition, with_policy: bool) -> GroupSpec:
    """Raises pydantic.ValidationError naming the bad field."""
    policy: PolicySpec | dict[str, object] = {}
    if with_policy:
        p = msg.policy
        policy = {
            "local_failover": p.local_failover,
            "failback_hold_down_ms": p.failback_hold_down_ms,
            "min_dwell_ms": p.min_dwell_ms,
            "fail_hosts": p.fail_hosts,
            "fail_fraction": p.fail_fraction or 0.5,
            "auto_failback": p.auto_failback,
            "failback_hold_s": p.failback_hold_s,
            "min_hosts_up": p.min_hosts_up,
            "fraction_up": p.fraction_up,
            "slow_threshold_ms": p.slow_threshold_ms,
        }
    return GroupSpec.model_validate(
        {
            "name": msg.name,
            "paths": [
                {
                    "name": p.name,
                    "transport": p.transport or "sim",
                    "endpoints": dict(p.endpoints) or ({"default": p.endpoint} if p.endpoint else {}),
                    "warmth": warmth_of(p.warmth),
                }
                for p in msg.paths
            ],
            "policy": policy,
        }
    )


def stage_pb(s: Stage) -> pb.StageTiming:
    return pb.StageTiming(stage=s.stage, where=s.where, duration_us=s.duration_us)
