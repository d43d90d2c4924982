"""Sidecar configuration: validated at load, errors name the field.

The process refuses to start on any problem (bad address, duplicate group,
unreadable state file, an override naming an unknown path) rather than
starting half-way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from failover.config_source import LayeredSettings
from failover.model.spec import GroupSpec, check_address, check_dial_address, check_name
from failover.tls import TlsSection

MAX_SOCKET_PATH_BYTES = 107
"""A Unix socket address holds 108 bytes with the trailing NUL (Linux sun_path): a longer
path failed only at bind, exit 1 with a raw gRPC C-core line."""


def check_socket_path(value: str) -> str:
    if len(os.fsencode(value)) > MAX_SOCKET_PATH_BYTES:
        raise ValueError(
            f"{len(os.fsencode(value))} bytes, a Unix socket path holds at most {MAX_SOCKET_PATH_BYTES}"
        )
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ListenSection(_Section):
    # The strategy API. Unix socket by default: owner and one group may use it.
    socket: str = ""
    socket_group: str = ""
    tcp: str = ""
    # The framed local relay (length-prefixed protobuf frames, docs/api.md): a second Unix
    # socket with the same owner/group rules; empty: off.
    framed_socket: str = ""
    # A connection (framed) or Relay stream (gRPC) that has not named its strategy by then
    # is closed: a silent one would hold a descriptor and a handler for ever.
    hello_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)

    @field_validator("tcp")
    @classmethod
    def _tcp(cls, v: str) -> str:
        return check_address(v) if v else v

    @field_validator("socket", "framed_socket")
    @classmethod
    def _socket(cls, v: str) -> str:
        return check_socket_path(v)


class DataPlaneSection(_Section):
    heartbeat_interval_ms: int = Field(default=50, ge=1, le=10_000)
    silent_after_intervals: int = Field(default=3, ge=2, le=100)
    # The logon's answer has its own deadline, well above the silence budget of an
    # established session: a venue may take longer to answer a logon than a heartbeat.
    logon_timeout_ms: int = Field(default=1000, ge=1, le=60_000)
    # At start, how long the route waits for the decision's first path to report (logged
    # on, or down) once another path is up, rather than take the other and hand it back.
    cold_start_grace_ms: int = Field(default=200, ge=0, le=60_000)
    reconnect_min_ms: int = Field(default=50, ge=1)
    reconnect_max_ms: int = Field(default=2000, ge=1)
    # A line that carries orders: once its oldest order has had no ack or reject for
    # max(order_timeout_rtt_multiple x heartbeat RTT median, order_timeout_floor_ms), probe
    # it with a heartbeat at once; no echo within max(multiple x RTT median,
    # probe_timeout_floor_ms) declares the path silent. Idle lines keep the heartbeat limit.
    order_probe: bool = True
    order_timeout_rtt_multiple: float = Field(default=4.0, ge=1.0, le=1000.0)
    order_timeout_floor_ms: float = Field(default=5.0, ge=0.5, le=60_000)
    probe_timeout_floor_ms: float = Field(default=5.0, ge=0.5, le=60_000)
    # The probe's echo queues behind what the line owes: each message owed when the probe
    # goes out adds this much to its wait (a burst is the venue's work, not a stall).
    probe_timeout_per_owed_us: float = Field(default=50.0, ge=0.0, le=100_000)

    @model_validator(mode="after")
    def _backoff(self) -> DataPlaneSection:
        if self.reconnect_max_ms < self.reconnect_min_ms:
            raise ValueError("reconnect_max_ms must be >= reconnect_min_ms")
        return self


class OrdersSection(_Section):
    # A message with no usable path gets NO_PATH after this long.
    no_path_wait_ms: int = Field(default=500, ge=0, le=60_000)
    max_outstanding: int = Field(default=10_000, ge=1)
    # Messages per second each strategy may send (token bucket, burst of one second); 0: no limit.
    rate_limit_per_s: int = Field(default=0, ge=0)
    # Messages a dead path left without a reply: the venue is asked over a live path of
    # the group whether it has each, and answers within this long turn IN_DOUBT into
    # ACKED or REJECTED before the outcome is delivered; 0: deliver IN_DOUBT at once.
    confirm_in_doubt_ms: int = Field(default=10, ge=0, le=10_000)
    # Messages a dead path left without a reply are written once more, first, to the next
    # path, under the same client order id. Only for venues that refuse a reused client
    # order id on every line (as the simulator does): elsewhere a copy could double an order.
    resend_in_doubt: bool = False
    # A written message with no ack or reject this long after it was written, on a line
    # that is still up (its heartbeats answered), becomes IN_DOUBT: a strategy always gets
    # an outcome. 0: wait for the venue however long it takes.
    reply_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    # The route left a path that is still up while messages on it await replies: those
    # hold every later message of the group (make-before-break). After this long they are
    # asked about over the new path (as reply_timeout_ms's are) and the group moves on.
    route_change_drain_ms: int = Field(default=100, ge=0, le=600_000)


class StreamSection(_Section):
    # No sign of life from the replica for this long: the stream is dead, move on. Found by
    # HTTP/2 pings every third of it, answered by the replica's gRPC core (failover.rpc.
    # liveness_options). A stream with no message at all is also dead after 3 of the
    # replica's stream.heartbeat_interval_ms (10 s by default: a wedged event loop).
    dead_after_ms: int = Field(default=3000, ge=100, le=60_000)
    connect_timeout_ms: int = Field(default=1000, ge=50, le=60_000)


class GroupOverride(_Section):
    local_failover: bool | None = None
    warmth: dict[str, str] = {}


class SidecarConfig(LayeredSettings):
    """Environment overrides use FAILOVER_SIDECAR_ (FAILOVER_COORDINATORS belongs to the CLI)."""

    model_config = SettingsConfigDict(
        env_prefix="FAILOVER_SIDECAR_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    host_id: str
    site: str = "default"
    groups: list[str] = Field(min_length=1)
    coordinators: list[str] = Field(min_length=1)
    state_file: str
    strategies: list[str] = []
    listen: ListenSection = ListenSection()
    data_plane: DataPlaneSection = DataPlaneSection()
    orders: OrdersSection = OrdersSection()
    stream: StreamSection = StreamSection()
    # mTLS to the coordinators (docs/security.md); insecure by default, loudly logged.
    tls: TlsSection = TlsSection()
    # Definitions used only on a first start with no state file and no control plane.
    bootstrap: list[GroupSpec] = []
    overrides: dict[str, GroupOverride] = {}
    log_level: str = "info"
    # Prometheus /metrics ("host:port"; empty: no endpoint) and OTLP/gRPC export ("host:port").
    metrics_listen: str = ""
    otlp_endpoint: str = ""
    otlp_interval_ms: int = Field(default=10_000, ge=100, le=3_600_000)

    @field_validator("host_id", "site")
    @classmethod
    def _names(cls, v: str) -> str:
        return check_name(v, "name")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        for g in v:
            check_name(g, "group name")
        dupes = sorted({g for g in v if v.count(g) > 1})
        if dupes:
            raise ValueError(f"duplicate group {dupes[0]!r}")
        return v

    @field_validator("metrics_listen")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return check_address(v) if v else v

    @field_validator("otlp_endpoint")
    @classmethod
    def _dialled(cls, v: str) -> str:
        return check_dial_address(v) if v else v

    @field_validator("coordinators")
    @classmethod
    def _coordinators(cls, v: list[str]) -> list[str]:
        for a in v:
            check_dial_address(a)
        return v

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: list[str]) -> list[str]:
        for s in v:
            check_name(s, "strategy id")
        return v

    @field_validator("state_file")
    @classmethod
    def _state_file(cls, v: str) -> str:
        p = Path(v)
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise ValueError(f"directory {str(parent)!r} does not exist")
        if not os.access(parent, os.W_OK):
            raise ValueError(f"directory {str(parent)!r} is not writable")
        if p.exists():
            try:
                json.loads(p.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"unreadable state file {v!r}: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _overrides(self) -> SidecarConfig:
        known = {g.name: set(g.path_names()) for g in self.bootstrap}
        for g, ov in self.overrides.items():
            if g not in self.groups:
                raise ValueError(f"overrides.{g}: unknown group (not in groups)")
            for path in ov.warmth:
                if g in known and path not in known[g]:
                    raise ValueError(f"overrides.{g}.warmth.{path}: unknown path")
            for level in ov.warmth.values():
                if level not in ("logged_on", "connected", "cold"):
                    raise ValueError(f"overrides.{g}.warmth: {level!r} is not logged_on, connected or cold")
        for b in self.bootstrap:
            if b.name not in self.groups:
                raise ValueError(f"bootstrap.{b.name}: unknown group (not in groups)")
        return self

    @property
    def socket_path(self) -> str:
        return self.listen.socket or f"/tmp/failover-sidecar-{self.host_id}.sock"
