"""lbctl check: each kind of finding, and silence when all is well."""

from __future__ import annotations

from typing import Any

import pytest

from lbctl import audit
from lbctl.audit import Kind


def svc(
    name: str,
    ip: str | None = None,
    age: int = 0,
    *,
    port: int = 80,
    share: str | None = None,
    local: bool = False,
) -> dict[str, Any]:
    ann = {"lbctl.io/allow-shared-ip": share} if share else {}
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": ann,
            "creationTimestamp": f"2026-01-01T00:00:{age:02d}Z",
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": port, "protocol": "TCP"}],
            "selector": {"app": name},
            "externalTrafficPolicy": "Local" if local else "Cluster",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
    }


def endpoint_slice(service: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{service}-x", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True},
                       "nodeName": node}],
    }  # fmt: skip


CONFIG = {"config.yaml": "pools: [{name: lan, addresses: [198.51.100.1-198.51.100.2]}]"}
RESERVING = {
    "config.yaml": """
pools:
  - {name: lan, addresses: [198.51.100.1-198.51.100.2]}
  - {name: team, addresses: [203.0.113.10], namespaces: [team-a]}
reservations:
  - {address: 198.51.100.1, service: default/gone}
  - {address: 203.0.113.10, service: default/api}
"""
}
NODES = [{"metadata": {"name": n}} for n in ("node1", "node2")]
LIVE = {"node1", "node2"}

CASES = [
    ("all well", [svc("a", "198.51.100.1"), svc("b", "198.51.100.2", 1)], {}, []),
    (
        "two holders without a sharing key",
        [svc("a", "198.51.100.1"), svc("b", "198.51.100.1", 1)],
        {},
        [(Kind.HELD_TWICE, "198.51.100.1"), (Kind.STALE, "default/b")],
    ),
    (
        "two holders with one key and different ports share",
        [
            svc("a", "198.51.100.1", share="k"),
            svc("b", "198.51.100.1", 1, port=81, share="k"),
        ],
        {},
        [],
    ),
    (
        "one key but the same port",
        [svc("a", "198.51.100.1", share="k"), svc("b", "198.51.100.1", 1, share="k")],
        {},
        [(Kind.HELD_TWICE, "198.51.100.1"), (Kind.STALE, "default/b")],
    ),
    (
        "an address outside every pool",
        [svc("a", "203.0.113.9")],
        {},
        [(Kind.OUTSIDE_POOLS, "default/a"), (Kind.STALE, "default/a")],
    ),
    (
        "a pending Service, with its reason",
        [svc("a", "198.51.100.1"), svc("b", "198.51.100.2", 1), svc("c", age=2)],
        {},
        [(Kind.PENDING, "default/c")],
    ),
    (
        "an expired speaker Lease",
        [svc("a", "198.51.100.1")],
        {"live": {"node1"}, "expired": {"node2"}},
        [(Kind.SPEAKER_DOWN, "node2")],
    ),
    (
        "the expired Lease of a node that is gone",
        [svc("a", "198.51.100.1")],
        {"expired": {"node9"}},
        [],
    ),
    (
        "the config does not parse and two hold one address",
        [svc("a", "198.51.100.1"), svc("b", "198.51.100.1", 1)],
        {"config": {"config.yaml": "pools: nope"}},
        [(Kind.HELD_TWICE, "198.51.100.1"), (Kind.CONFIG_ERROR, "config")],
    ),
    (
        "no live speaker at all",
        [svc("a", "198.51.100.1")],
        {"live": set()},
        [(Kind.NO_LIVE_SPEAKER, "198.51.100.1")],
    ),
    (
        "a drained-away Local Service with no ready endpoint",
        [svc("a", "198.51.100.1", local=True)],
        {},
        [(Kind.NO_READY_ENDPOINT, "198.51.100.1")],
    ),
    (
        "a Local Service whose only endpoint is on a node without a speaker",
        [svc("a", "198.51.100.1", local=True)],
        {"slices": [endpoint_slice("a", "node9")]},
        [(Kind.NO_LIVE_SPEAKER, "198.51.100.1")],
    ),
    (
        "a Local Service with an endpoint on a live node",
        [svc("a", "198.51.100.1", local=True)],
        {"slices": [endpoint_slice("a", "node2")]},
        [],
    ),
    (
        "a config that does not parse",
        [svc("a", "198.51.100.1")],
        {"config": {"config.yaml": "pools: nope"}},
        [(Kind.CONFIG_ERROR, "config")],
    ),
    (
        "a reservation whose pool refuses its namespace, its Service absent",
        [svc("a", "198.51.100.1")],
        {"config": RESERVING},
        [(Kind.RESERVATION_NOT_ADMITTED, "reservations[1]")],
    ),
    (
        "a reservation whose pool refuses its namespace, its Service pending for it",
        [svc("a", "198.51.100.1"), svc("api", age=1)],
        {"config": RESERVING},
        [(Kind.RESERVATION_NOT_ADMITTED, "reservations[1]"), (Kind.PENDING, "default/api")],
    ),
    (
        "a reservation kept for a Service that does not exist is no finding",
        [svc("b", "198.51.100.2")],
        {
            "config": {
                "config.yaml": "pools: [{name: lan, addresses: [198.51.100.1-198.51.100.2]}]\n"
                "reservations: [{address: 198.51.100.1, service: default/gone}]"
            }
        },
        [],
    ),
]


@pytest.mark.parametrize(("services", "extra", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_findings(
    services: list[dict[str, Any]], extra: dict[str, Any], expected: list[tuple[Kind, str]]
) -> None:
    findings = audit.check(
        services,
        extra.get("config", CONFIG),
        node_objs=NODES,
        slice_objs=extra.get("slices", []),
        live=extra.get("live", LIVE),
        expired=extra.get("expired", set()),
    )
    assert sorted((f.kind, f.subject) for f in findings) == sorted(expected)
    assert all(f.message for f in findings)
    text = audit.render(findings)
    assert text == "ok: no findings\n" if not expected else f"{len(expected)} finding(s)" in text


def test_the_pending_finding_carries_the_allocator_reason() -> None:
    findings = audit.check(
        [svc("a", "198.51.100.1"), svc("b", "198.51.100.2", 1), svc("c", age=2)],
        CONFIG,
        node_objs=NODES,
        live=LIVE,
    )
    assert "no free IPv4 address in pool(s) lan" in findings[0].message


def test_garbage_objects_never_crash_the_audit() -> None:
    junk: list[Any] = [
        {"spec": {"type": "LoadBalancer", "ports": "x"}, "status": {"loadBalancer": 3}},
        {"metadata": None, "spec": {"type": "LoadBalancer"}},
        {"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "x"}]}}},
    ]
    audit.check(junk, CONFIG, node_objs=[{"metadata": 5}], slice_objs=[{"endpoints": 7}], live=LIVE)


def test_a_holder_being_deleted_is_named_as_such() -> None:
    old = svc("a", "198.51.100.1")
    old["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    findings = audit.check([old, svc("b", "198.51.100.1", 1)], CONFIG, node_objs=NODES, live=LIVE)
    held = [f for f in findings if f.kind is Kind.HELD_TWICE]
    assert len(held) == 1 and "default/a being deleted" in held[0].message


def test_a_refused_reservation_is_named_with_its_pool_rule() -> None:
    (finding,) = audit.check([], RESERVING, node_objs=NODES, live=LIVE)
    assert finding.message == (
        "pool 'team' admits only namespaces team-a: default/api will be refused 203.0.113.10"
    )


def test_an_address_another_host_uses_is_a_finding() -> None:
    found = audit.check(
        [svc("a", "198.51.100.1")],
        CONFIG,
        node_objs=NODES,
        live=LIVE,
        conflicts={"198.51.100.1": ("02:99:00:00:00:01", "node1")},
    )
    assert [(f.kind, f.subject) for f in found] == [(Kind.ADDRESS_CONFLICT, "198.51.100.1")]
    assert "02:99:00:00:00:01" in found[0].message and "node1" in found[0].message


def test_a_speaker_the_lan_does_not_hear_is_down_though_its_lease_is_live() -> None:
    found = audit.check(
        [svc("a", "198.51.100.1")], CONFIG, node_objs=NODES, live={"node1"}, unheard={"node2"}
    )
    assert (Kind.SPEAKER_DOWN, "node2") in [(f.kind, f.subject) for f in found]
