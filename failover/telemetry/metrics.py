"""One MeterProvider per process, with a Prometheus ``/metrics`` endpoint and optional OTLP.

Every histogram we record is a duration in seconds, from tens of microseconds
(a flip on the sidecar) to seconds (a failover decided on the coordinator), so
one view gives them all explicit buckets over that range instead of the SDK's
default boundaries (which start at 5 and are meant for milliseconds).

The Prometheus reader gets its own registry (not prometheus_client's global
one), so several processes' worth of replicas can share one Python process in
tests without colliding. ``start`` never fails half-way: a bad address is a
config error, raised by ``build`` before anything is bound.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server

from failover.wire.address import parse_host_port

log = logging.getLogger(__name__)

# Seconds: 20 µs .. 10 s, roughly 1-2-5 per decade.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.00002, 0.00005, 0.0001, 0.0002, 0.0005,
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip

METER_NAME = "failover"


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
        """Open ``/metrics`` on ``listen`` (a thread of prometheus_client); returns the bound port."""
        if self.registry is None or self._server is not None:
            return self.port
        host, port = parse_host_port(self.listen)
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
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
    """Explicit duration buckets for every histogram."""
    return [
        View(
            instrument_type=Histogram,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=DURATION_BUCKETS_S),
        )
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
    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = MeterProvider(metric_readers=all_readers, resource=resource, views=views())
    return Telemetry(
        provider=provider,
        meter=provider.get_meter(METER_NAME),
        registry=registry,
        listen=listen,
        name=f"{service} {instance}",
    )


def disabled() -> Telemetry:
    """A provider with no reader: instruments cost next to nothing and export nowhere."""
    provider = MeterProvider(views=views())
    return Telemetry(provider=provider, meter=provider.get_meter(METER_NAME))
