"""Reading Services and Nodes: annotations (ours and MetalLB's), families, ports; never raising."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl import objects
from lbctl.allocator import FamilyPolicy, Port


def svc(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": annotations or {},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"type": "LoadBalancer", **spec},
    }


@pytest.mark.parametrize(
    ("obj", "handled"),
    [
        (svc(), True),
        (svc(type="ClusterIP"), False),
        (svc(loadBalancerClass="lbctl.io/l2"), True),
        (svc(loadBalancerClass="other.io/lb"), False),
        ({"metadata": {}}, False),
    ],
)
def test_which_services_we_handle(obj: dict[str, Any], handled: bool) -> None:
    assert objects.Handling().handles(obj) is handled


def test_class_less_services_can_be_left_to_another_provider() -> None:
    h = objects.Handling(class_less=False)
    assert not h.handles(svc()) and h.handles(svc(loadBalancerClass="lbctl.io/l2"))


@pytest.mark.parametrize(
    ("annotations", "spec", "ips", "problem"),
    [
        ({"lbctl.io/loadBalancerIPs": "198.51.100.1"}, {}, ["198.51.100.1"], None),
        (
            {"lbctl.io/loadBalancerIPs": "198.51.100.1, 2001:db8::1"},
            {},
            ["198.51.100.1", "2001:db8::1"],
            None,
        ),
        ({"metallb.io/loadBalancerIPs": "198.51.100.2"}, {}, ["198.51.100.2"], None),
        ({"metallb.universe.tf/loadBalancerIPs": "198.51.100.3"}, {}, ["198.51.100.3"], None),
        ({}, {"loadBalancerIP": "198.51.100.4"}, ["198.51.100.4"], None),
        (
            {"lbctl.io/loadBalancerIPs": "198.51.100.1"},
            {"loadBalancerIP": "198.51.100.4"},
            [],
            "both lbctl.io/loadBalancerIPs and spec.loadBalancerIP are set",
        ),
        (
            {"lbctl.io/loadBalancerIPs": "198.51.100.1,198.51.100.2"},
            {},
            [],
            "at most one address per IP family",
        ),
        ({"lbctl.io/loadBalancerIPs": "banana"}, {}, [], "'banana' is not an IP address"),
        ({"lbctl.io/loadBalancerIPs": " , "}, {}, [], "is empty"),
        ({"lbctl.io/loadBalancerIPs": "1" * 2000}, {}, [], "longer than 1024"),
    ],
)
def test_requested_addresses(
    annotations: dict[str, str], spec: dict[str, Any], ips: list[str], problem: str | None
) -> None:
    req = objects.request_of(svc(annotations, **spec))
    assert [str(i) for i in req.requested_ips] == ips
    assert (problem is None and req.problem is None) or (problem and problem in str(req.problem))


def test_pool_sharing_policy_ports_and_selector_are_read() -> None:
    req = objects.request_of(
        svc(
            {"metallb.universe.tf/address-pool": "lan", "lbctl.io/allow-shared-ip": "k"},
            ports=[{"port": 53, "protocol": "UDP"}, {"port": 80}],
            externalTrafficPolicy="Local",
            selector={"app": "dns"},
            ipFamilies=["IPv6", "IPv4"],
            ipFamilyPolicy="PreferDualStack",
        )
    )
    assert req.requested_pool == "lan" and req.sharing_key == "k"
    assert req.ports == frozenset({Port("UDP", 53), Port("TCP", 80)})
    assert not req.cluster_traffic and req.selector == (("app", "dns"),)
    assert req.families == (6, 4) and req.family_policy is FamilyPolicy.PREFER_DUAL


def test_a_server_without_ip_families_uses_the_cluster_ip_family() -> None:
    assert objects.request_of(svc(clusterIP="fd00::10")).families == (6,)
    assert objects.request_of(svc(clusterIP="10.96.0.10")).families == (4,)


def test_status_addresses_that_are_not_addresses_are_ignored() -> None:
    obj = svc()
    obj["status"] = {
        "loadBalancer": {
            "ingress": [
                {"ip": "198.51.100.1"},
                {"hostname": "x"},
                {"ip": "nonsense"},
                {"ip": "198.51.100.1"},
            ]
        }
    }
    assert objects.current_ips(obj) == (ipaddress.ip_address("198.51.100.1"),)


def test_node_addresses() -> None:
    node = {
        "metadata": {"name": "n1"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "198.51.100.10"},
                {"type": "ExternalIP", "address": "2001:db8::10"},
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "garbage"},
            ]
        },
    }
    assert {str(k): v for k, v in objects.node_addresses(node).items()} == {
        "198.51.100.10": "n1",
        "2001:db8::10": "n1",
    }


def test_node_info_reads_conditions_taints_and_deletion() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "labels": {"a": "b"},
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "Unknown"},
                {"type": "NetworkUnavailable", "status": "True"},
                {"status": "True"},
            ]
        },
    }
    info = objects.node_info(node)
    assert (info.name, dict(info.labels), info.deleting) == ("n1", {"a": "b"}, True)
    assert dict(info.conditions) == {"Ready": "Unknown", "NetworkUnavailable": "True"}
    assert info.taints == {"ToBeDeletedByClusterAutoscaler"}
    assert info.exists


# Keys the adapter reads, so random documents reach its branches.
FIELDS = [
    "metadata",
    "spec",
    "status",
    "annotations",
    "labels",
    "name",
    "namespace",
    "type",
    "ports",
    "port",
    "protocol",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerIP",
    "loadBalancerClass",
    "selector",
    "loadBalancer",
    "ingress",
    "ip",
    "addresses",
    "address",
    "lbctl.io/loadBalancerIPs",
    "LoadBalancer",
    "IPv6",
    "InternalIP",
    "conditions",
    "taints",
    "key",
    "deletionTimestamp",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(FIELDS) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["metadata", "spec", "status"]), json_values))
def test_any_json_is_read_without_raising(obj: dict[str, Any]) -> None:
    objects.Handling().handles(obj)
    objects.request_of(obj)
    objects.node_addresses(obj)
    objects.node_info(obj)
