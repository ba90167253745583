"""Services blocked by other Services, on the real API server (issue 14, items 1 and 6).

A pending Service gets its address as soon as the Service blocking it changes (no resync:
``--resync-period=0``); a Service that changes into a conflict is the one refused; avoidBuggyIPs
binds requested and kept addresses; the same Event again counts up one object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kube_helpers import ControllerProcess, check_findings, events, ingress, put_config, wait_for
from kubernetes import client

from lbctl.lab import controlplane

Start = Callable[..., ControllerProcess]
NO_RESYNC = ("--resync-period=0",)  # so only a wake-up can unblock


def lb(
    name: str,
    *,
    ports: list[tuple[str, int]],
    selector: dict[str, str],
    local: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "type": "LoadBalancer",
            "selector": selector,
            "externalTrafficPolicy": "Local" if local else "Cluster",
            "ports": [
                {"name": f"p{i}", "protocol": proto, "port": port}
                for i, (proto, port) in enumerate(ports)
            ],
        },
    }


X = "198.51.100.10"
ONE = "pools: [{name: lan, addresses: [198.51.100.10/32]}]"
SHARE_X = {"lbctl.io/allow-shared-ip": "dns", "lbctl.io/loadBalancerIPs": X}

# Each row: the holder, the waiter it blocks, and the patch to the holder that unblocks it.
UNBLOCK = [
    (
        "the holder turns from Local to Cluster",
        lb(
            "holder",
            ports=[("TCP", 53)],
            selector={"app": "holder"},
            local=True,
            annotations=SHARE_X,
        ),
        lb("waiter", ports=[("UDP", 53)], selector={"app": "waiter"}, annotations=SHARE_X),
        {"spec": {"externalTrafficPolicy": "Cluster"}},
    ),
    (
        "the holder moves from TCP/80 to TCP/8080",
        lb("holder", ports=[("TCP", 80)], selector={"app": "holder"}, annotations=SHARE_X),
        lb("waiter", ports=[("TCP", 80)], selector={"app": "waiter"}, annotations=SHARE_X),
        [{"op": "replace", "path": "/spec/ports/0/port", "value": 8080}],  # a JSON patch
    ),
    (
        "the holder takes the waiter's sharing key",
        lb(
            "holder",
            ports=[("TCP", 80)],
            selector={"app": "holder"},
            annotations={**SHARE_X, "lbctl.io/allow-shared-ip": "other"},
        ),
        lb("waiter", ports=[("TCP", 443)], selector={"app": "waiter"}, annotations=SHARE_X),
        {"metadata": {"annotations": {"lbctl.io/allow-shared-ip": "dns"}}},
    ),
]


@pytest.mark.parametrize(
    ("title", "holder", "waiter", "patch"), UNBLOCK, ids=[r[0] for r in UNBLOCK]
)
def test_a_waiter_gets_its_address_as_soon_as_the_holder_stops_blocking_it(
    apiserver: controlplane.ControlPlane,
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    record_property: Callable[[str, object], None],
    title: str,
    holder: dict[str, Any],
    waiter: dict[str, Any],
    patch: dict[str, Any] | list[dict[str, Any]],
) -> None:
    put_config(core, namespace, ONE)
    run_controller(extra=NO_RESYNC)
    core.create_namespaced_service(namespace, holder)
    assert wait_for("the holder's address", lambda: ingress(core, namespace, "holder")) == [X]
    core.create_namespaced_service(namespace, waiter)
    wait_for(
        "the waiter refused",
        lambda: [e for e in events(core, namespace, "waiter") if e[1] == "AllocationFailed"],
    )
    assert ingress(core, namespace, "waiter") == []
    started = time.monotonic()
    core.patch_namespaced_service("holder", namespace, patch)
    assert wait_for("the waiter's address", lambda: ingress(core, namespace, "waiter")) == [X]
    record_property("unblocked_after_s", round(time.monotonic() - started, 3))
    assert ingress(core, namespace, "holder") == [X]
    assert check_findings(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == []


def test_a_service_that_changes_into_a_conflict_is_refused_and_the_bystander_keeps_its_address(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: lan, addresses: [198.51.100.1-198.51.100.3]}]")
    run_controller()
    shared = {"lbctl.io/allow-shared-ip": "share", "lbctl.io/loadBalancerIPs": "198.51.100.3"}
    backend = {"app": "backend"}
    core.create_namespaced_service(
        namespace, lb("s3", ports=[("TCP", 80)], selector=backend, local=True, annotations=shared)
    )
    wait_for("s3's address", lambda: ingress(core, namespace, "s3"))
    core.create_namespaced_service(
        namespace, lb("s4", ports=[("TCP", 443)], selector=backend, local=True, annotations=shared)
    )
    assert wait_for("s4 shares", lambda: ingress(core, namespace, "s4")) == ["198.51.100.3"]
    # s3, the older, changes its sharing key: it is the one refused (it asked for .3: pending).
    core.patch_namespaced_service(
        "s3", namespace, {"metadata": {"annotations": {"lbctl.io/allow-shared-ip": "other"}}}
    )
    wait_for(
        "s3 refused",
        lambda: [
            e
            for e in events(core, namespace, "s3")
            if e[1] == "AllocationFailed" and "(InUse)" in e[2]
        ],
    )
    assert ingress(core, namespace, "s3") == []
    assert ingress(core, namespace, "s4") == ["198.51.100.3"]
    assert not [e for e in events(core, namespace, "s4") if e[1] == "ClearAssignment"]


def test_avoid_buggy_ips_refuses_a_requested_and_releases_a_kept_address(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: lan, addresses: [198.18.3.0/24]}]")
    run_controller()
    core.create_namespaced_service(namespace, lb("kept", ports=[("TCP", 80)], selector={"a": "b"}))
    assert wait_for("kept gets .0", lambda: ingress(core, namespace, "kept")) == ["198.18.3.0"]
    put_config(
        core,
        namespace,
        "pools: [{name: lan, avoidBuggyIPs: true, addresses: [198.18.3.0/24, 198.18.4.0/24]}]",
    )
    wait_for("kept moved off .0", lambda: ingress(core, namespace, "kept") == ["198.18.3.1"])
    cleared = [e for e in events(core, namespace, "kept") if e[1] == "ClearAssignment"]
    assert [e[2] for e in cleared] == [
        "removed 198.18.3.0: 198.18.3.0 ends in .0 or .255 and pool 'lan' has avoidBuggyIPs"
    ]
    for name, ip in (("dot0", "198.18.4.0"), ("dot255", "198.18.4.255")):
        core.create_namespaced_service(
            namespace,
            lb(
                name,
                ports=[("TCP", 80)],
                selector={"a": "b"},
                annotations={"lbctl.io/loadBalancerIPs": ip},
            ),
        )
        wait_for(
            f"{name} refused",
            lambda name=name: [
                e
                for e in events(core, namespace, name)
                if e[1] == "AllocationFailed" and "(BuggyIP)" in e[2]
            ],
        )
        assert ingress(core, namespace, name) == []


def test_the_same_allocation_failure_again_counts_up_one_event(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, ONE)
    run_controller()
    core.create_namespaced_service(namespace, lb("first", ports=[("TCP", 80)], selector={"a": "b"}))
    wait_for("first's address", lambda: ingress(core, namespace, "first"))
    core.create_namespaced_service(namespace, lb("late", ports=[("TCP", 80)], selector={"a": "b"}))

    def failed() -> list[client.CoreV1Event]:
        found = core.list_namespaced_event(namespace, field_selector="involvedObject.name=late")
        return [e for e in found.items if e.reason == "AllocationFailed"]

    def count(reason: str) -> int:
        return sum(e.count or 1 for e in failed() if f"({reason})" in e.message)

    wait_for("the pool-full Event", lambda: count("PoolExhausted") == 1)
    # Another failure, then the pool-full one again, twice: each is a retry of the same Service.
    for n in (1, 2):
        core.patch_namespaced_service(
            "late", namespace, {"metadata": {"annotations": {"lbctl.io/address-pool": "nope"}}}
        )
        wait_for(f"PoolNotFound x{n}", lambda n=n: count("PoolNotFound") == n)
        core.patch_namespaced_service(
            "late", namespace, {"metadata": {"annotations": {"lbctl.io/address-pool": None}}}
        )
        wait_for(f"PoolExhausted x{n + 1}", lambda n=n: count("PoolExhausted") == n + 1)
    # Counted up on one object each, as Kubernetes' recorder does: not four more objects.
    assert len([e for e in failed() if "(PoolExhausted)" in e.message]) == 1
    assert len([e for e in failed() if "(PoolNotFound)" in e.message]) == 1
