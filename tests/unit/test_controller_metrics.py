"""The controller's per-Service metric, read from the allocator when Prometheus scrapes."""

from __future__ import annotations

import ipaddress

from prometheus_client import generate_latest

from lbctl import ipam
from lbctl.allocator import ServiceKey
from lbctl.metrics import ControllerMetrics

WEB, DB = ServiceKey("demo/web"), ServiceKey("demo/db")


def _assigned(m: ControllerMetrics) -> list[str]:
    text = generate_latest(m.registry).decode()
    return [line for line in text.splitlines() if line.startswith(m.address_assigned.NAME + "{")]


def _ip(text: str) -> ipam.IP:
    return ipaddress.ip_address(text)


def test_a_replica_that_does_not_lead_exports_no_address() -> None:
    assert _assigned(ControllerMetrics()) == []


def test_the_leader_exports_each_address_of_each_service_as_the_allocator_holds_it() -> None:
    m = ControllerMetrics()
    held = {WEB: (_ip("198.51.100.10"), _ip("2001:db8::10")), DB: (_ip("198.51.100.11"),)}
    m.address_assigned.source = lambda: held
    assert _assigned(m) == [
        'lbctl_allocator_address_assigned{ip="198.51.100.11",service="demo/db"} 1.0',
        'lbctl_allocator_address_assigned{ip="198.51.100.10",service="demo/web"} 1.0',
        'lbctl_allocator_address_assigned{ip="2001:db8::10",service="demo/web"} 1.0',
    ]
    del held[DB]  # released: gone at the next scrape, with nothing to remove by hand
    assert len(_assigned(m)) == 2


def test_stepping_down_stops_exporting_what_the_leader_knew() -> None:
    m = ControllerMetrics()
    m.address_assigned.source = lambda: {WEB: (_ip("198.51.100.10"),)}
    m.forget_allocations()
    assert _assigned(m) == []
