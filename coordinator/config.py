"""Coordinator configuration, with the timing budget checked at load time."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coordinator.store.types import LeaseTiming
from failover.config_source import LayeredSettings
from failover.model.spec import GroupSpec, check_address, check_dial_address, check_name
from failover.tls import TlsSection

# Floors of the sync server's keepalive (StreamSection.keepalive_ms): no ping every
# few ms that must be answered within a few more.
MIN_KEEPALIVE_MS = 100
MIN_PING_TIMEOUT_MS = 1000
# The loop proves it runs every 100 ms: a stall limit must span several of those.
MIN_LOOP_STALL_LIMIT_MS = 500
MAX_MESSAGE_BYTES_LIMIT = 256 * 1024 * 1024
"""stream.max_message_bytes goes to gRPC core as a C int (a larger value failed the server's
construction with OverflowError); a snapshot of a thousand groups is a few MiB."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class EtcdSection(_Section):
    endpoints: list[str] = Field(default_factory=lambda: ["127.0.0.1:2379"], min_length=1)
    prefix: str = "/failover/v1/"
    # Deadline of one attempt; a call makes at most rpc_attempts of them.
    rpc_timeout_ms: int = Field(default=500, ge=50, le=60_000)
    rpc_attempts: int = Field(default=2, ge=1, le=5)
    # TLS to etcd (its own PKI may differ from the replicas'): read when the client connects.
    tls: TlsSection = TlsSection()

    @field_validator("endpoints")
    @classmethod
    def _eps(cls, v: list[str]) -> list[str]:
        for e in v:
            if e.startswith("https://"):
                raise ValueError(f"bad address {e!r}: a URL: write host:port (TLS is etcd.tls)")
            check_dial_address(e.removeprefix("http://"))
        return [e.removeprefix("http://") for e in v]

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.startswith("/") or not v.endswith("/"):
            raise ValueError("must start and end with '/'")
        return v


class ElectionSection(_Section):
    # false: this replica never stands for leader. It serves sidecar streams and forwards
    # operator calls like any follower, so replicas that do campaign can be kept free of
    # streams and answer operators without queueing behind a fan-out (docs/deploy.md,
    # "Stream-only replicas"). At least one replica of a cluster must campaign.
    campaign: bool = True
    lease_ttl_s: int = Field(default=2, ge=1, le=300)
    # 0: a third of the granted TTL.
    keepalive_interval_ms: int = Field(default=0, ge=0, le=300_000)
    # The lease is given up locally this long before etcd could expire it.
    lease_margin_ms: int = Field(default=200, ge=0, le=60_000)
    # How long the event loop may not run before the lease keeper (a thread of its own)
    # stops renewing and gives the lease up. 0: the lease TTL.
    loop_stall_limit_ms: int = Field(default=0, ge=0, le=600_000)

    @field_validator("loop_stall_limit_ms")
    @classmethod
    def _stall(cls, v: int) -> int:
        if 0 < v < MIN_LOOP_STALL_LIMIT_MS:
            raise ValueError(f"must be 0 (the lease TTL) or at least {MIN_LOOP_STALL_LIMIT_MS} ms")
        return v

    @property
    def keepalive_ms(self) -> int:
        """The renewal interval, for the requested TTL."""
        return self.keepalive_interval_ms or self.lease_ttl_s * 1000 // 3


class FreshnessSection(_Section):
    probe_interval_ms: int = Field(default=250, ge=20, le=60_000)
    # A replica whose watch is this many revisions behind a fresh read is stale.
    max_lag_revisions: int = Field(default=50, ge=1)
    # ... or whose last successful probe is this old.
    stale_after_ms: int = Field(default=1500, ge=100)


class StreamSection(_Section):
    # Liveness of a stream is proved by HTTP/2 pings, answered by gRPC core on both sides
    # without Python work per stream (the sidecar's stream.dead_after_ms, the replica's
    # ping_interval_ms below). The heartbeat is the slow check that this replica's event
    # loop still runs (a wedged loop whose gRPC core still answers pings): a sidecar calls
    # a stream with no message for 3 intervals dead. Freshness changes (stale, era) go
    # out at once, whatever the interval.
    heartbeat_interval_ms: int = Field(default=10_000, ge=20, le=60_000)
    # The replica pings each sidecar connection this often and closes it when a ping stays
    # unanswered for 2 of these (keepalive_ms): a sidecar whose bytes are lost on the way
    # here is cut within about 3 intervals. A backstop: the sidecar's own pings
    # (stream.dead_after_ms) make it leave within 3 s; each ping costs CPU per connection.
    ping_interval_ms: int = Field(default=10_000, ge=MIN_KEEPALIVE_MS, le=60_000)
    # At most request_checks.MAX_FORWARD_HOSTS: a replica's full health state (one host per
    # stream) must fit in one forward its peers accept.
    max_streams: int = Field(default=5000, ge=1, le=100_000)
    # Streams one host id may hold open on one replica (a reconnect overlaps the old stream).
    max_streams_per_host: int = Field(default=8, ge=1, le=1000)
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_MESSAGE_BYTES_LIMIT)
    # A stream that sends no hello within this long is closed.
    hello_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    # A push not acknowledged within this long may be replaced by the newest decision.
    ack_timeout_ms: int = Field(default=5_000, ge=10, le=600_000)
    # New streams are refused (UNAVAILABLE, "overloaded") while the event loop ran this
    # late in the last second and streams are already served; 0 never sheds.
    shed_loop_lag_ms: int = Field(default=500, ge=0, le=60_000)

    def keepalive_ms(self) -> tuple[int, int]:
        """(ping every, close when a ping is unanswered for) on the replica's server, in ms.

        A replica stops serving a sidecar it cannot hear (its bytes lost one way, ours
        still arriving) within about 3 ping intervals: it pings once an interval of
        silence from the peer has passed and gives up 2 intervals later (at least 1 s:
        a ping is answered by gRPC core, not by the sidecar's event loop, but a starved
        machine still delays it). Independent of the heartbeat interval, which only
        checks the replica's own event loop.
        """
        every = max(MIN_KEEPALIVE_MS, self.ping_interval_ms)
        return every, max(MIN_PING_TIMEOUT_MS, 2 * self.ping_interval_ms)


class HealthSection(_Section):
    # A new leader waits at most this long for every replica's full health state.
    collect_timeout_ms: int = Field(default=1000, ge=0, le=60_000)
    # Hosts whose stream ended are forgotten after this long.
    host_grace_s: float = Field(default=10.0, ge=0)


class AdminLimitsSection(_Section):
    # Admin calls per second per caller identity (per host address without TLS), and the burst.
    rate_per_s: float = Field(default=200.0, gt=0, le=100_000)
    burst: int = Field(default=1000, ge=1, le=1_000_000)


class TestHooks(_Section):
    # Hold every commit this long just before its transaction goes out (fencing
    # tests freeze the leader there). Never set in production.
    hold_before_commit_ms: int = Field(default=0, ge=0)


class CoordinatorConfig(LayeredSettings):
    replica_id: str = "c1"
    listen: str = "127.0.0.1:7001"
    # Address other replicas and sidecars use to reach this one (default: listen).
    advertise: str = ""
    etcd: EtcdSection = EtcdSection()
    election: ElectionSection = ElectionSection()
    freshness: FreshnessSection = FreshnessSection()
    stream: StreamSection = StreamSection()
    health: HealthSection = HealthSection()
    admin_limits: AdminLimitsSection = AdminLimitsSection()
    history_retention: int = Field(default=200, ge=1, le=100_000)
    groups: list[GroupSpec] = []
    # Prometheus /metrics ("host:port"; empty: no endpoint) and OTLP/gRPC export ("host:port").
    metrics_listen: str = ""
    # mTLS for the replica's server and its channels to peers (docs/security.md).
    tls: TlsSection = TlsSection()
    # Site -> the groups its sidecars may receive. Empty (the default): every group for
    # every site. With mTLS the site is the one in the sidecar's certificate.
    site_groups: dict[str, list[str]] = {}
    otlp_endpoint: str = ""
    otlp_interval_ms: int = Field(default=10_000, ge=100, le=3_600_000)
    test_hooks: TestHooks = TestHooks()

    @field_validator("replica_id")
    @classmethod
    def _rid(cls, v: str) -> str:
        return check_name(v, "replica id")

    @field_validator("site_groups")
    @classmethod
    def _site_groups(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for site, groups in v.items():
            check_name(site, "site")
            for g in groups:
                check_name(g, f"group of site {site!r}")
        return v

    @field_validator("listen", "metrics_listen")
    @classmethod
    def _addr(cls, v: str) -> str:
        return check_address(v) if v else v

    @field_validator("advertise", "otlp_endpoint")
    @classmethod
    def _dialled(cls, v: str) -> str:
        return check_dial_address(v) if v else v

    @property
    def lease_timing(self) -> LeaseTiming:
        """What the lease keeper really uses; the timing budget is computed from the same value."""
        return LeaseTiming(
            keepalive_interval_ms=self.election.keepalive_interval_ms,
            attempt_timeout_ms=self.etcd.rpc_timeout_ms,
            attempts=self.etcd.rpc_attempts,
            margin_ms=self.election.lease_margin_ms,
            loop_stall_limit_ms=self.election.loop_stall_limit_ms,
        )

    @model_validator(mode="after")
    def _budget(self) -> CoordinatorConfig:
        # Patroni's rule (loop_wait + 2 x retry_timeout <= ttl) on what our keeper does:
        # after the last answered renewal, the next is due one interval later and may
        # need every attempt before the local deadline, TTL - margin.
        t, ttl_s = self.lease_timing, self.election.lease_ttl_s
        budget = t.budget_ms(ttl_s)
        if budget > ttl_s * 1000:
            interval = (
                f"{t.interval_ms(ttl_s)}{', a third of the TTL' if not t.keepalive_interval_ms else ''}"
            )
            raise ValueError(
                f"timing budget: election.keepalive_interval_ms ({interval}) + etcd.rpc_attempts "
                f"({t.attempts}) x etcd.rpc_timeout_ms ({t.attempt_timeout_ms}) + "
                f"election.lease_margin_ms ({t.margin_ms}) = {budget} ms must not exceed "
                f"election.lease_ttl_s ({ttl_s * 1000} ms)"
            )
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"groups: duplicate group {dupes[0]!r}")
        return self

    @property
    def advertised(self) -> str:
        return self.advertise or self.listen
