"""One MeterProvider per process, with a Prometheus ``/metrics`` endpoint and optional OTLP.

Every histogram we record is a duration in seconds, from tens of microseconds
(a flip on the sidecar) to seconds (a failover decided on the coordinator), so
one view gives them all explicit buckets over that range instead of the SDK's
default boundaries (which start at 5 and are meant for milliseconds).

The Prometheus reader gets its own registry (not prometheus_client's global
one), so several processes' worth of replicas can share one Python process in
tests without colliding. ``start`` never fails half-way: a bad address is a
config error, raised by ``build`` before anything is bound.

The hot path does not pay for the SDK: :class:`Instruments` (the base of the
coordinator's and the sidecar's instrument sets) queues each measurement (one
deque append) and hands the queue to the SDK when a reader collects, on the
reader's thread. Recording through the SDK itself costs tens of microseconds
per call (attribute hashing and validation, exemplar sampling; more for a label
set's first record), which a flip of a few hundred microseconds would feel
(``failover bench flip --compare-metrics`` times both).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from failover.telemetry import gc_pauses, metrics_http
from failover.telemetry.version import software_version
from failover.wire.address import parse_host_port

log = logging.getLogger(__name__)

# Seconds: 20 µs .. 10 s, roughly 1-2-5 per decade.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.00002, 0.00005, 0.0001, 0.0002, 0.0005,
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip

# Milliseconds, for the OpenTelemetry RPC conventions' histograms (rpc.server.duration):
# 20 µs .. 10 s for unary calls, then up to a day for streams (a sidecar's Sync stream
# lives as long as its connection).
RPC_DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0,
    100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    60_000.0, 600_000.0, 3_600_000.0, 86_400_000.0,
)  # fmt: skip

METER_NAME = "failover"
# Measurements held between two collections; past this the oldest are dropped (and counted).
PENDING_MAX = 10_000

Attrs = dict[str, str]
# What a queued measurement may carry (the RPC conventions' status code is an int).
MeasureAttrs = Mapping[str, str | int]


class Instruments:
    """Attribute dicts made once per label set, and measurements recorded off the hot path.

    ``_a(k1, v1, k2, v2, ...)`` returns the same dict for the same pairs (the SDK never
    mutates it). ``_record`` and ``_add`` queue a measurement for a histogram or a counter;
    the queue is drained into the instruments by an observable counter's callback, which
    the SDK runs on every collection before it reads the instruments, so a scrape (or an
    OTLP export, or an in-memory reader) sees every measurement queued before it. Callers
    run on one event loop; the drain runs on the reader's thread (deque appends and pops
    are atomic). With no reader nothing collects: the queue keeps the newest
    ``PENDING_MAX`` and ``failover.telemetry.dropped`` counts the rest.
    """

    def __init__(self, meter: Meter, max_pending: int = PENDING_MAX) -> None:
        self._attrs: dict[tuple[str, ...], Attrs] = {}
        self._pending: deque[tuple[Callable[[float, MeasureAttrs], None], float, MeasureAttrs]] = deque()
        self._max_pending = max_pending
        self.dropped = 0
        meter.create_observable_counter(
            "failover.telemetry.dropped",
            callbacks=[self._drain],
            unit="{measurement}",
            description="Measurements dropped because no reader collected them in time",
        )

    def _a(self, *kv: str) -> Attrs:
        """The attribute dict for key/value pairs, made once."""
        a = self._attrs.get(kv)
        if a is None:
            a = self._attrs[kv] = dict(zip(kv[::2], kv[1::2], strict=True))
        return a

    def _record(
        self, record: Callable[[float, MeasureAttrs], None], value: float, attrs: MeasureAttrs
    ) -> None:
        """Queue ``record(value, attrs)`` (a histogram's ``record`` or a counter's ``add``)."""
        p = self._pending
        if len(p) >= self._max_pending:
            p.popleft()
            self.dropped += 1
        p.append((record, value, attrs))

    def _drain(self, _: CallbackOptions) -> Iterable[Observation]:
        p = self._pending
        while True:
            try:
                record, value, attrs = p.popleft()
            except IndexError:
                break
            record(value, attrs)
        return [Observation(self.dropped)]


@dataclass
class Telemetry:
    """A process's metrics: ``meter`` makes instruments; ``port`` is the bound /metrics port (0: none).

    ``serve`` binds the endpoint; ``shutdown`` stops it and flushes the exporters (idempotent).
    """

    provider: MeterProvider
    meter: Meter
    port: int = 0
    registry: CollectorRegistry | None = None
    listen: str = ""
    name: str = ""
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None
    _closed: bool = field(default=False, repr=False)

    def serve(self) -> int:
        """Open ``/metrics`` on ``listen`` (a thread: metrics_http); returns the bound port."""
        if self.registry is None or self._server is not None:
            return self.port
        host, port = parse_host_port(self.listen)
        try:
            self._server, self._thread = metrics_http.start(host, port, self.registry)
        except OSError as exc:  # the one line the process ends with names the setting
            raise OSError(exc.errno, f"metrics_listen {self.listen}: {exc.strerror or exc}") from None
        self.port = self._server.server_port
        log.info("%s: metrics on http://%s:%d/metrics", self.name, host, self.port)
        return self.port

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.provider.shutdown(timeout_millis=2000)


def views() -> list[View]:
    """Explicit duration buckets for every histogram: ours in seconds, the RPC conventions' in ms.

    Selected by unit, so no histogram matches two views (which would export it twice).
    """
    return [
        View(
            instrument_type=Histogram,
            instrument_unit="s",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=DURATION_BUCKETS_S),
        ),
        View(
            instrument_type=Histogram,
            instrument_unit="ms",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=RPC_DURATION_BUCKETS_MS),
        ),
    ]


def build(
    service: str,
    instance: str,
    *,
    listen: str = "",
    otlp_endpoint: str = "",
    otlp_interval_ms: int = 10_000,
    readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Build the provider (nothing is bound yet: ``serve`` opens ``/metrics`` on ``listen``).

    ``readers`` are added as they are (tests pass an InMemoryMetricReader).
    ``otlp_endpoint`` ("host:port") adds a periodic OTLP/gRPC exporter.
    """
    all_readers: list[MetricReader] = list(readers)
    registry: CollectorRegistry | None = None
    if listen:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        parse_host_port(listen)
        registry = CollectorRegistry(auto_describe=True)
        all_readers.append(PrometheusMetricReader(registry=registry, disable_target_info=True))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=otlp_endpoint, insecure=True)
        all_readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=otlp_interval_ms))
    resource = Resource.create(
        {"service.name": service, "service.instance.id": instance, "service.version": software_version()}
    )
    provider = MeterProvider(metric_readers=all_readers, resource=resource, views=views())
    meter = provider.get_meter(METER_NAME)
    gc_pauses.observe(meter)
    return Telemetry(
        provider=provider,
        meter=meter,
        registry=registry,
        listen=listen,
        name=f"{service} {instance}",
    )


def disabled() -> Telemetry:
    """A provider with no reader: instruments cost next to nothing and export nowhere."""
    provider = MeterProvider(views=views())
    return Telemetry(provider=provider, meter=provider.get_meter(METER_NAME))
