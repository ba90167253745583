"""Prometheus metrics of the controller, and the HTTP endpoint with /healthz and /readyz (I/O)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from lbctl import ipam
from lbctl.allocator import ServiceKey

# Service key ("namespace/name") -> the addresses the allocator gives it, read at scrape time.
Assignments = Callable[[], Mapping[ServiceKey, tuple[ipam.IP, ...]]]


class AssignedAddresses:
    """``lbctl_allocator_address_assigned{service, ip}``: 1 for each address the leader has
    given a Service, read from the allocator when Prometheus scrapes.

    A labelled Gauge keeps a child object per Service between scrapes (about 0.8 KB each:
    8 MB with 10,000 Services); this keeps nothing. ``source`` is None while not leading."""

    NAME = "lbctl_allocator_address_assigned"
    HELP = "1 for each address the leader has given a Service (join with lbctl_speaker_announced)"

    def __init__(self) -> None:
        self.source: Assignments | None = None

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.NAME, self.HELP, labels=["service", "ip"])

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]  # registering must not read the allocator

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family, source = self._family(), self.source
        if source is not None:
            for key, ips in sorted(source().items()):
                for ip in ips:
                    family.add_metric([str(key), str(ip)], 1)
        yield family


class Families:
    """Metric families made in one registry (as Go's ``promauto.With(registry)``), each named
    ``<namespace>_<subsystem>_<name>`` as prometheus_client joins them: the registry and the
    prefix are said once per component, each family by name, help text and label names."""

    def __init__(
        self, registry: CollectorRegistry, namespace: str = "lbctl", subsystem: str = ""
    ) -> None:
        self.registry, self.namespace, self.subsystem = registry, namespace, subsystem

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(
            name, documentation, labels, self.namespace, self.subsystem, registry=self.registry
        )

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(
            name, documentation, labels, self.namespace, self.subsystem, registry=self.registry
        )

    def histogram(self, name: str, documentation: str, *, buckets: Sequence[float]) -> Histogram:
        return Histogram(
            name, documentation, (), self.namespace, self.subsystem, registry=self.registry,
            buckets=buckets,
        )  # fmt: skip


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        family = Families(self.registry)
        self.addresses_total = family.gauge(
            "allocator_addresses_total", "Addresses in each pool and family", "pool", "family"
        )
        self.addresses_in_use = family.gauge(
            "allocator_addresses_in_use",
            "Addresses held by Services, per pool and family",
            "pool",
            "family",
        )
        self.config_stale = family.gauge(
            "config_stale",
            "1 when the latest ConfigMap was invalid and an older one is in force (or none yet)",
        )
        self.allocations = family.counter(
            "allocations", "Allocation decisions by outcome", "outcome"
        )
        self.allocation_seconds = family.histogram(
            "allocation_latency_seconds",
            "From a Service change being seen to its status written",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.writes = family.counter("api_writes", "Writes to the API server", "kind")
        self.leader = family.gauge("leader", "1 while this replica holds the lease")
        self.address_assigned = AssignedAddresses()
        self.registry.register(self.address_assigned)
        self.services_pending = family.gauge(
            "services_pending",
            "Services the leader handles that have no address, by reason",
            "reason",
        )

    def forget_allocations(self) -> None:
        """A replica that stops leading stops reporting what the leader knows."""
        self.address_assigned.source = None
        for gauge in (
            self.addresses_total,
            self.addresses_in_use,
            self.services_pending,
        ):
            gauge.clear()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            body, ctype, code = generate_latest(self.server.registry), CONTENT_TYPE_LATEST, 200
        elif self.path.startswith("/healthz"):
            body, ctype, code = self._probe(self.server.healthy, b"unhealthy\n")
        elif self.path.startswith("/readyz"):
            body, ctype, code = self._probe(self.server.ready, b"not ready\n")
        else:
            body, ctype, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _probe(check: Callable[[], bool], failed: bytes) -> tuple[bytes, str, int]:
        """A kubelet probe's answer (body, content type, status): 200 "ok", or 503 and why."""
        ok = check()
        return (b"ok\n" if ok else failed), "text/plain", 200 if ok else 503

    def log_message(self, format: str, *args: object) -> None:
        return  # probes every few seconds would flood the log


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    healthy: Callable[[], bool]
    ready: Callable[[], bool]


class Endpoint(Protocol):
    """Where a component serves its metrics and probes (its settings)."""

    @property
    def metrics_address(self) -> str: ...
    @property
    def metrics_port(self) -> int: ...


def serve(
    registry: CollectorRegistry,
    endpoint: Endpoint,
    *,
    ready: Callable[[], bool],
    healthy: Callable[[], bool] = lambda: True,
) -> _Server | None:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``endpoint`` in a daemon thread;
    ``shutdown()`` on the result stops it. Port 0 turns the endpoint off (None)."""
    if endpoint.metrics_port == 0:
        return None
    server = _Server((endpoint.metrics_address, endpoint.metrics_port), _Handler)
    server.registry, server.healthy, server.ready = registry, healthy, ready
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
