"""The stored shapes (JSON in etcd) of groups, controls and decisions, validated.

Pydantic models with ``extra="forbid"`` so a typo in a config file or an admin
request is refused with the field named, never silently ignored.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAX_UINT32 = 2**32 - 1
"""Policy integers travel as uint32 (GroupPolicy): a larger one would fail every encoding."""
MAX_GROUP_PATHS = 64
"""Paths of one group: PutGroup's limit (request_checks.MAX_PATHS) and a health report's."""


def check_address(value: str) -> str:
    """``host:port`` (IPv6 in brackets); the error names what is wrong."""
    if "/" in value:
        raise ValueError(f"bad address {value!r}: a URL: write host:port")
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"bad address {value!r}: expected host:port")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"bad address {value!r}: unbalanced brackets")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad address {value!r}: port must be 0-65535")
    if any(c.isspace() for c in host):
        raise ValueError(f"bad address {value!r}: host has spaces")
    return value


def check_dial_address(value: str) -> str:
    """:func:`check_address` for an address something connects to: port 0 only means
    "any free port" to a listener, so a dialler would fail on it for ever."""
    check_address(value)
    if int(value.rpartition(":")[2]) == 0:
        raise ValueError(f"bad address {value!r}: port 0 cannot be dialled")
    return value


def check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"bad {what} {value!r}: use 1-63 of a-z 0-9 _ . - starting with a letter or digit")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Record(BaseModel):
    """What a leader writes for every replica to read: fields a newer version added are
    ignored, so replicas of the previous version keep reading decisions during a rolling
    upgrade (inputs from people, configs and group files, stay strict)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


class PathSpec(Strict):
    name: str
    transport: Literal["sim"] = "sim"
    # site -> host:port; "default" serves sites without an entry of their own.
    endpoints: dict[str, str] = Field(min_length=1)
    warmth: Literal["logged_on", "connected", "cold"] = "logged_on"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "path name")

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, v: dict[str, str]) -> dict[str, str]:
        for site, addr in v.items():
            check_name(site, "site")
            check_dial_address(addr)
        return v

    def endpoint_for(self, site: str) -> str:
        return self.endpoints.get(site) or self.endpoints.get("default", "")


class PolicySpec(Strict):
    local_failover: bool = True
    failback_hold_down_ms: int = Field(default=1000, ge=0, le=3_600_000)
    min_dwell_ms: int = Field(default=1000, ge=0, le=3_600_000)
    fail_hosts: int = Field(default=0, ge=0, le=MAX_UINT32)  # 0: a majority of reporting hosts
    fail_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    auto_failback: bool = False
    failback_hold_s: int = Field(default=30, ge=0, le=MAX_UINT32)
    min_hosts_up: int = Field(default=1, ge=0, le=MAX_UINT32)
    fraction_up: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_threshold_ms: int = Field(default=0, ge=0, le=MAX_UINT32)


class GroupSpec(Strict):
    name: str
    paths: list[PathSpec] = Field(min_length=1, max_length=MAX_GROUP_PATHS)
    policy: PolicySpec = PolicySpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "group name")

    @model_validator(mode="after")
    def _unique_paths(self) -> GroupSpec:
        seen: set[str] = set()
        for p in self.paths:
            if p.name in seen:
                raise ValueError(f"duplicate path {p.name!r}")
            seen.add(p.name)
        return self

    def path_names(self) -> list[str]:
        return [p.name for p in self.paths]


class Epoch(NamedTuple):
    """(era, revision), ordered lexicographically like the tuple it is."""

    era: int
    revision: int

    def __str__(self) -> str:
        return f"{self.era}:{self.revision}"


ZERO_EPOCH = Epoch(0, 0)
MAX_EPOCH_REVISION = 2**62
"""Epoch revisions are etcd revisions (int64); an era is a small counter. One range for
what replicas accept from sidecars and what a sidecar loads from its state file."""
MAX_ERA = 2**62


def epoch_out_of_range(era: int, revision: int, field: str) -> str | None:
    """Why an epoch is outside what any replica accepts, or None."""
    if not 0 <= era <= MAX_ERA:
        return f"{field}.era: {era} out of range 0-{MAX_ERA}"
    if not 0 <= revision <= MAX_EPOCH_REVISION:
        return f"{field}.revision: {revision} out of range 0-{MAX_EPOCH_REVISION}"
    return None


class Stage(Record):
    stage: str
    where: str
    duration_us: int


class TriggerSpec(Record):
    kind: Literal["operator", "health", "seed", "control"] = "seed"
    operator: str = ""
    evidence: list[str] = []


class DecisionRecord(Record):
    """The value stored at routes/<group>; its epoch revision is the key's mod revision."""

    group: str
    paths: list[str]
    era: int
    leader_id: str
    reason: str
    trigger: TriggerSpec = TriggerSpec()
    decided_at_unix_ms: int = 0
    stages: list[Stage] = []
    prev: tuple[int, int] | None = None
    # The leader's fencing token the commit compared (0: written before it was recorded).
    fencing_token: int = 0
    # W3C trace context of the leader's commit span ("": none), so every replica's push
    # and every host's apply join the decision's trace.
    traceparent: str = Field(default="", max_length=128)
    tracestate: str = Field(default="", max_length=512)
    # The operator request this decision answers ("": the policy's own, or none given).
    request_id: str = Field(default="", max_length=64)


class ControlsSpec(Strict):
    """Operator controls of one group (controls/<group>)."""

    drained: list[str] = []
    pinned: str | None = None
    paused: bool = False
    halted: bool = False
    reason: str = ""
    operator: str = ""


def describe_validation_error(exc: ValidationError, root: str = "") -> str:
    """One line per problem, each naming the field by its dotted path."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        if root:
            loc = f"{root}.{loc}"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)
