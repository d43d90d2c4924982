"""Field-by-field checks of what callers send a replica (pure: no grpc, no I/O).

Each check returns None or one line naming the field (``health.paths.3.state:
undefined enum value 9``); the services turn it into INVALID_ARGUMENT. Bounds
keep one caller's message from growing a replica's memory or work without
limit: a sidecar may only speak of the groups its hello named, a report
carries a bounded number of paths, text fields have a maximum length.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable
from typing import Any

from failover.model.spec import MAX_ERA, MAX_GROUP_PATHS, NAME_RE, epoch_out_of_range
from failover.v1 import admin_pb2 as apb
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb

MAX_GROUPS = 1000
"""Groups one hello may name (and so entries in ``held`` and ``effective``)."""
MAX_PATHS = MAX_GROUP_PATHS  # one group definition (the model refuses more) and one health report
"""Paths of one group (definition) and path health entries per group in one report."""
MAX_STAGES = 32
MAX_TEXT = 1024
"""Reasons and operator names."""
MAX_EVIDENCE = 256
MAX_VERSION = 64
MAX_INSTANCE = 64  # Hello.instance: the sidecar sends 12 hex digits
"""A sidecar's software version (a PEP 440 version with a local part fits)."""
MAX_HOST_LIMIT = 100_000
MAX_HISTORY_LIMIT = 10_000
MAX_FORWARD_HOSTS = 100_000
"""Hosts in one forwarded health message (a replica serves at most stream.max_streams <= this)."""
MAX_HOST_PATHS = MAX_PATHS * MAX_GROUPS
MAX_DURATION_US = 3_600_000_000
"""Stage durations and detection times: an hour is already nonsense; a huge value would
make forwarded health look older than it is."""
MAX_TRACEPARENT = 128
"""Version 00 is 55 characters; later versions may append fields after a dash."""
MAX_TRACESTATE = 512

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-[ -~]*)?")
_TRACESTATE = re.compile(r"[ -~]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1 (Unicode category Cc)

_PATH_STATES = frozenset(pb.PathState.values())
_CAUSES = frozenset(pb.FailureCause.values())
_WARMTHS = frozenset(pb.Warmth.values())
_ACTIONS = frozenset(apb.ControlAction.values()) - {apb.CONTROL_ACTION_UNSPECIFIED}


def _name(value: str, field: str, *, optional: bool = False) -> str | None:
    if optional and not value:
        return None
    if not NAME_RE.match(value):
        shown = value if len(value) <= 80 else value[:80] + "..."
        return f"{field}: bad name {shown!r} (1-63 of a-z 0-9 _ . - starting with a letter or digit)"
    return None


def _text(value: str, field: str) -> str | None:
    if len(value) > MAX_TEXT:
        return f"{field}: {len(value)} characters, at most {MAX_TEXT}"
    # One line of text: it is stored, and printed to operators' terminals (history, status),
    # where an escape sequence would act (set a title, erase a line, fake an answer).
    bad = _CONTROL.search(value)
    if bad is not None:
        return f"{field}: control character {bad.group()!r} at {bad.start()} (one line of printable text)"
    return None


def _epoch(e: pb.Epoch, field: str) -> str | None:
    return epoch_out_of_range(e.era, e.revision, field)


def _enum(value: int, allowed: frozenset[int], field: str) -> str | None:
    return None if value in allowed else f"{field}: undefined enum value {value}"


def _first(problems: Iterable[str | None]) -> str | None:
    for p in problems:
        if p is not None:
            return p
    return None


def _stages(stages: Collection[pb.StageTiming], field: str) -> str | None:
    if len(stages) > MAX_STAGES:
        return f"{field}: {len(stages)} entries, at most {MAX_STAGES}"
    for i, st in enumerate(stages):
        p = _first(
            (
                _name(st.stage, f"{field}.{i}.stage"),
                _name(st.where, f"{field}.{i}.where", optional=True),
                None
                if 0 <= st.duration_us <= MAX_DURATION_US
                else f"{field}.{i}.duration_us: {st.duration_us} out of range 0-{MAX_DURATION_US}",
            )
        )
        if p is not None:
            return p
    return None


def _path_health(ph: pb.PathHealth, f: str) -> str | None:
    return _first(
        (
            _name(ph.group, f"{f}.group"),
            _name(ph.path, f"{f}.path"),
            _enum(ph.state, _PATH_STATES, f"{f}.state"),
            _enum(ph.cause, _CAUSES, f"{f}.cause"),
            _enum(ph.warmth, _WARMTHS, f"{f}.warmth"),
            None
            if 0 <= ph.detect_us <= MAX_DURATION_US
            else f"{f}.detect_us: {ph.detect_us} out of range 0-{MAX_DURATION_US}",
        )
    )


# --- the sidecar stream -------------------------------------------------------


def check_hello(h: sync_pb2.Hello) -> str | None:
    """A hello a replica can open a session for."""
    p = _first((_name(h.host_id, "hello.host_id"), _name(h.site, "hello.site", optional=True)))
    if p is not None:
        return p
    if len(h.version) > MAX_VERSION or not h.version.isprintable():
        return f"hello.version: at most {MAX_VERSION} printable characters"
    if len(h.instance) > MAX_INSTANCE or not h.instance.isprintable():
        return f"hello.instance: at most {MAX_INSTANCE} printable characters"
    if not h.groups:
        return "hello.groups: at least one group is required"
    if len(h.groups) > MAX_GROUPS:
        return f"hello.groups: {len(h.groups)} groups, at most {MAX_GROUPS}"
    named: set[str] = set()
    for i, g in enumerate(h.groups):
        p = _name(g, f"hello.groups.{i}")
        if p is not None:
            return p
        if g in named:
            return f"hello.groups.{i}: duplicate group {g!r}"
        named.add(g)
    for g, e in h.held.items():
        if g not in named:
            return f"hello.held: group {g[:80]!r} is not in hello.groups"
        p = _epoch(e, f"hello.held.{g}")
        if p is not None:
            return p
    return None


def check_ack(ack: sync_pb2.Ack, groups: Collection[str]) -> str | None:
    if ack.group not in groups:
        return f"ack.group: {ack.group[:80]!r} is not a group of this stream's hello"
    return _first((_epoch(ack.epoch, "ack.epoch"), _stages(ack.stages, "ack.stages")))


def check_health(report: sync_pb2.HealthReport, groups: Collection[str]) -> str | None:
    """Health for this stream's own groups only, with defined enum values, bounded in size."""
    limit = MAX_PATHS * max(1, len(groups))
    if len(report.paths) > limit:
        return f"health.paths: {len(report.paths)} entries, at most {limit} ({MAX_PATHS} per group)"
    for i, ph in enumerate(report.paths):
        f = f"health.paths.{i}"
        p = (
            None if ph.group in groups else f"{f}.group: {ph.group[:80]!r} is not a group of this stream"
        ) or _path_health(ph, f)
        if p is not None:
            return p
    for g, path in report.effective.items():
        if g not in groups:
            return f"health.effective: {g[:80]!r} is not a group of this stream"
        p = _name(path, f"health.effective.{g}", optional=True)
        if p is not None:
            return p
    return None


def trace_context(traceparent: str, tracestate: str) -> tuple[str, str]:
    """A message's W3C trace context if well-formed, else ("", ""): tracing is best effort.

    Never a reason to refuse a message or end a stream: a bad value only means the
    replica's spans start a trace of their own. A bad tracestate alone is dropped.
    """
    if not traceparent or len(traceparent) > MAX_TRACEPARENT:
        return "", ""
    m = _TRACEPARENT.fullmatch(traceparent)
    if (
        m is None
        or m.group(1) == "ff"
        or (m.group(1) == "00" and m.group(4) is not None)
        or m.group(2) == "0" * 32
        or m.group(3) == "0" * 16
    ):
        return "", ""
    if len(tracestate) > MAX_TRACESTATE or not _TRACESTATE.fullmatch(tracestate):
        tracestate = ""
    return traceparent, tracestate


def caller_trace(context: Any) -> tuple[str, str]:
    """The W3C context an operator command sent as gRPC metadata (``traceparent``,
    ``tracestate``), checked like a message's; ("", "") when none or malformed."""
    md = dict(context.invocation_metadata() or ())
    tp, ts = md.get("traceparent", ""), md.get("tracestate", "")
    return trace_context(tp if isinstance(tp, str) else "", ts if isinstance(ts, str) else "")


REQUEST_ID_HEADER = "failover-request-id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(context: Any) -> str:
    """The operator request's id: the caller's ``failover-request-id`` (so a client's retry
    is the same request), else a new one. Every copy of a request that replicas forward
    carries it, so leaders commit the request at most once. ValueError when malformed."""
    md = dict(context.invocation_metadata() or ())
    rid = md.get(REQUEST_ID_HEADER)
    if rid is None:
        return uuid.uuid4().hex
    if not isinstance(rid, str) or not _REQUEST_ID_RE.match(rid):
        raise ValueError(f"{REQUEST_ID_HEADER}: 1-64 characters of A-Z a-z 0-9 . _ : - (got {rid!r:.80})")
    return rid


FORWARDED_BY_HEADER = "failover-forwarded-by"
_MAX_FORWARDED_BY = 8


def forwarded_by(context: Any) -> tuple[str, ...]:
    """The replicas that forwarded this copy of an operator request, first one first
    (``failover-forwarded-by``, comma-separated): a replica never forwards a copy back to
    one of them, so two replicas whose views each name the other as leader cannot pass a
    request back and forth. ValueError when malformed."""
    md = dict(context.invocation_metadata() or ())
    raw = md.get(FORWARDED_BY_HEADER)
    if raw is None:
        return ()
    ids = tuple(raw.split(",")) if isinstance(raw, str) else ()
    if not ids or len(ids) > _MAX_FORWARDED_BY or not all(_REQUEST_ID_RE.match(i) for i in ids):
        raise ValueError(
            f"{FORWARDED_BY_HEADER}: 1-{_MAX_FORWARDED_BY} comma-separated replica ids (got {raw!r:.80})"
        )
    return ids


# --- Admin requests -------------------------------------------------------------


def check_get_status(r: apb.GetStatusRequest | apb.LocalStatusRequest) -> str | None:
    return _first(
        (
            _name(r.group, "group", optional=True),
            None
            if r.host_limit <= MAX_HOST_LIMIT
            else f"host_limit: {r.host_limit}, at most {MAX_HOST_LIMIT}",
            _name(r.hosts_after, "hosts_after", optional=True),
        )
    )


def check_history(r: apb.HistoryRequest) -> str | None:
    return _first(
        (
            _name(r.group, "group"),
            None if r.limit <= MAX_HISTORY_LIMIT else f"limit: {r.limit}, at most {MAX_HISTORY_LIMIT}",
        )
    )


def check_switch(r: apb.SwitchRequest) -> str | None:
    return _first(
        (
            _name(r.group, "group") if r.group else "group: required",
            _name(r.path, "path") if r.path else "path: required",
            _text(r.reason, "reason"),
            _text(r.operator, "operator"),
        )
    )


def check_set_control(r: apb.SetControlRequest) -> str | None:
    if r.action not in _ACTIONS:
        what = (
            "required" if r.action == apb.CONTROL_ACTION_UNSPECIFIED else f"undefined enum value {r.action}"
        )
        return f"action: {what} (drain, undrain, pin, unpin, pause, resume, halt)"
    return _first(
        (
            _name(r.group, "group") if r.group else "group: required",
            _name(r.path, "path", optional=True),
            _text(r.reason, "reason"),
            _text(r.operator, "operator"),
        )
    )


def check_put_group(r: apb.PutGroupRequest) -> str | None:
    d = r.definition
    if len(d.paths) > MAX_PATHS:
        return f"definition.paths: {len(d.paths)} paths, at most {MAX_PATHS}"
    problem = _name(d.name, "definition.name")
    if problem is not None:
        return problem
    for i, p in enumerate(d.paths):
        f = f"definition.paths.{i}"
        if len(p.endpoints) > MAX_GROUPS:
            return f"{f}.endpoints: {len(p.endpoints)} sites, at most {MAX_GROUPS}"
        problem = _first(
            (
                _name(p.name, f"{f}.name"),
                _enum(p.warmth, _WARMTHS, f"{f}.warmth"),
                _text(p.transport, f"{f}.transport"),
                _text(p.endpoint, f"{f}.endpoint"),
                *(_name(site, f"{f}.endpoints") for site in p.endpoints),
                *(_text(addr, f"{f}.endpoints.{site}") for site, addr in p.endpoints.items()),
            )
        )
        if problem is not None:
            return problem
    if r.expected_mod_revision < 0:
        return f"expected_mod_revision: {r.expected_mod_revision} is negative"
    return None


def check_bump_era(r: apb.BumpEraRequest) -> str | None:
    return _first(
        (
            _text(r.reason, "reason")
            or (None if r.reason.strip() else "reason: required (say why you bump the era)"),
            _text(r.operator, "operator"),
            None if r.expected_era <= MAX_ERA else f"expected_era: {r.expected_era} out of range 0-{MAX_ERA}",
        )
    )


# --- Peer requests (replica to replica) ---------------------------------------------


def check_local_status(r: apb.LocalStatusRequest) -> str | None:
    return check_get_status(r)


def check_collect_health(r: apb.CollectHealthRequest) -> str | None:
    return _name(r.leader_id, "leader_id")


def check_prepare_to_lead(r: apb.PrepareToLeadRequest) -> str | None:
    return _name(r.leader_id, "leader_id")


def check_health_forward(r: apb.HealthForward) -> str | None:
    """A forward names its replica, at most MAX_FORWARD_HOSTS distinct hosts, each with
    valid path health (defined enums, names) and bounded stage timings."""
    problem = _name(r.replica_id, "replica_id")
    if problem is not None:
        return problem
    if len(r.hosts) > MAX_FORWARD_HOSTS:
        return f"hosts: {len(r.hosts)} entries, at most {MAX_FORWARD_HOSTS}"
    seen: set[str] = set()
    for i, h in enumerate(r.hosts):
        f = f"hosts.{i}"
        if h.host_id in seen:
            return f"{f}.host_id: duplicate {h.host_id!r} in one forward"
        seen.add(h.host_id)
        problem = _first((_name(h.host_id, f"{f}.host_id"), _name(h.site, f"{f}.site", optional=True)))
        if problem is None and len(h.paths) > MAX_HOST_PATHS:
            problem = f"{f}.paths: {len(h.paths)} entries, at most {MAX_HOST_PATHS}"
        if problem is None:
            problem = _first(_path_health(ph, f"{f}.paths.{j}") for j, ph in enumerate(h.paths))
        if problem is None:
            problem = _stages(h.stages, f"{f}.stages")
        if problem is not None:
            return problem
    return None
