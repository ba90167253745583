"""The controller against the real API server: every lifecycle rule, observed from outside."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from kube_helpers import (
    ControllerProcess,
    check_findings,
    events,
    ingress,
    metrics,
    probe,
    put_config,
    service,
    wait_for,
)
from kubernetes import client

from lbctl.lab import controlplane

POOL = """
pools:
  - name: lan
    addresses: [198.51.100.200-198.51.100.203, "2001:db8:1::/126"]
  - name: manual
    addresses: [203.0.113.10-203.0.113.11]
    autoAssign: false
"""

Start = Callable[..., ControllerProcess]


def test_a_loadbalancer_service_gets_an_address_a_finalizer_and_an_event(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    ctl = run_controller()
    core.create_namespaced_service(namespace, service("web"))
    assert wait_for("an address", lambda: ingress(core, namespace, "web")) == ["198.51.100.200"]
    m = wait_for(
        "metrics",
        lambda: (
            (m := metrics(ctl.port)).get(
                'lbctl_allocator_addresses_in_use{family="IPv4",pool="lan"}'
            )
            == 1
            # The latency is observed once the status write returns, which may be after the
            # watch has shown the address: wait for it rather than race it.
            and m.get("lbctl_allocation_latency_seconds_count", 0) >= 1
            and m
        ),
    )
    assert m['lbctl_allocator_addresses_total{family="IPv4",pool="lan"}'] == 4
    assert m['lbctl_allocator_addresses_total{family="IPv6",pool="lan"}'] == 4
    assert m['lbctl_allocations_total{outcome="allocated"}'] >= 1
    assert m["lbctl_allocation_latency_seconds_count"] >= 1
    assert m["lbctl_config_stale"] == 0 and m["lbctl_leader"] == 1
    assert probe(ctl.port, "/healthz") == 200
    svc = core.read_namespaced_service("web", namespace)
    assert "service.kubernetes.io/load-balancer-cleanup" in svc.metadata.finalizers
    assert svc.metadata.annotations["lbctl.io/allocated-from-pool"] == "lan"
    wait_for(
        "IPAllocated",
        lambda: [
            e
            for e in events(core, namespace, "web")
            if e[1] == "IPAllocated" and "198.51.100.200" in e[2]
        ],
    )


def test_other_services_are_never_touched(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(namespace, service("plain", type="ClusterIP"))
    core.create_namespaced_service(namespace, service("marker"))
    wait_for("the marker Service's address", lambda: ingress(core, namespace, "marker"))
    plain = core.read_namespaced_service("plain", namespace)
    assert plain.metadata.finalizers is None and plain.metadata.annotations is None


def test_requests_by_address_and_by_pool(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(
        namespace,
        service("by-annotation", annotations={"lbctl.io/loadBalancerIPs": "198.51.100.202"}),
    )
    core.create_namespaced_service(
        namespace,
        service(
            "by-metallb-name", annotations={"metallb.universe.tf/loadBalancerIPs": "203.0.113.11"}
        ),
    )
    core.create_namespaced_service(namespace, service("by-spec", load_balancer_ip="198.51.100.203"))
    core.create_namespaced_service(
        namespace, service("by-pool", annotations={"lbctl.io/address-pool": "manual"})
    )
    for name, want in [
        ("by-annotation", ["198.51.100.202"]),
        ("by-metallb-name", ["203.0.113.11"]),
        ("by-spec", ["198.51.100.203"]),
        ("by-pool", ["203.0.113.10"]),
    ]:
        assert wait_for(f"{name}'s address", lambda n=name: ingress(core, namespace, n)) == want


def test_a_refused_request_stays_pending_with_a_warning_that_says_why(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(
        namespace, service("outside", annotations={"lbctl.io/loadBalancerIPs": "198.51.100.99"})
    )
    core.create_namespaced_service(
        namespace, service("garbage", annotations={"lbctl.io/loadBalancerIPs": "not-an-ip"})
    )
    wait_for(
        "AllocationFailed for outside",
        lambda: [
            e
            for e in events(core, namespace, "outside")
            if e[:2] == ("Warning", "AllocationFailed")
            and "198.51.100.99 is in no configured pool" in e[2]
        ],
    )
    wait_for(
        "AllocationFailed for garbage",
        lambda: [
            e
            for e in events(core, namespace, "garbage")
            if e[:2] == ("Warning", "AllocationFailed")
            and "'not-an-ip' is not an IP address" in e[2]
        ],
    )
    assert ingress(core, namespace, "outside") == [] == ingress(core, namespace, "garbage")


def test_sharing_follows_key_and_ports(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    share = {"lbctl.io/allow-shared-ip": "dns"}
    core.create_namespaced_service(
        namespace, service("dns-tcp", ports=(("TCP", 53),), annotations=share)
    )
    first = wait_for("dns-tcp", lambda: ingress(core, namespace, "dns-tcp"))
    core.create_namespaced_service(
        namespace, service("dns-udp", ports=(("UDP", 53),), annotations=share)
    )
    core.create_namespaced_service(
        namespace, service("dns-tcp-2", ports=(("TCP", 53),), annotations=share)
    )
    assert wait_for("dns-udp", lambda: ingress(core, namespace, "dns-udp")) == first
    second = wait_for("dns-tcp-2", lambda: ingress(core, namespace, "dns-tcp-2"))
    assert second != first


def test_dual_stack(core: client.CoreV1Api, namespace: str, run_controller: Start) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(
        namespace, service("both", ip_family_policy="PreferDualStack", ip_families=["IPv4", "IPv6"])
    )
    core.create_namespaced_service(
        namespace, service("v6", ip_family_policy="SingleStack", ip_families=["IPv6"])
    )
    assert wait_for("both families", lambda: ingress(core, namespace, "both")) == [
        "198.51.100.200",
        "2001:db8:1::",
    ]
    assert wait_for("IPv6", lambda: ingress(core, namespace, "v6")) == ["2001:db8:1::1"]


def test_exhaust_then_free_hands_the_address_to_the_waiting_service(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: one, addresses: [198.51.100.250]}]")
    ctl = run_controller()
    core.create_namespaced_service(namespace, service("first"))
    assert wait_for("first", lambda: ingress(core, namespace, "first")) == ["198.51.100.250"]
    core.create_namespaced_service(namespace, service("second"))
    wait_for(
        "PoolExhausted",
        lambda: [e for e in events(core, namespace, "second") if "PoolExhausted" in e[2]],
    )
    # What the alerts read: one Service waiting for PoolExhausted, the address held by first.
    held = f'lbctl_allocator_address_assigned{{ip="198.51.100.250",service="{namespace}/%s"}}'
    waiting = 'lbctl_services_pending{reason="PoolExhausted"}'
    wait_for("the pending gauge", lambda: ctl.metric(waiting) == 1)
    assert ctl.metric(held % "first") == 1 and held % "second" not in metrics(ctl.port)
    core.delete_namespaced_service("first", namespace, _preload_content=False)
    wait_for(
        "first to be gone (finalizer removed)",
        lambda: (
            "first" not in [s.metadata.name for s in core.list_namespaced_service(namespace).items]
        ),
    )
    assert wait_for("second", lambda: ingress(core, namespace, "second")) == ["198.51.100.250"]
    wait_for("the pending gauge back to 0", lambda: ctl.metric(waiting) == 0)
    m = metrics(ctl.port)
    assert m[held % "second"] == 1 and held % "first" not in m


def test_a_type_change_releases_the_address_and_removes_the_finalizer(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: one, addresses: [198.51.100.250]}]")
    run_controller()
    core.create_namespaced_service(namespace, service("web"))
    wait_for("web", lambda: ingress(core, namespace, "web"))
    core.patch_namespaced_service("web", namespace, {"spec": {"type": "ClusterIP"}})

    def cleaned() -> bool:
        svc = core.read_namespaced_service("web", namespace)
        return not svc.metadata.finalizers and not (svc.status.load_balancer.ingress or [])

    wait_for("status cleared and finalizer removed", cleaned)
    core.create_namespaced_service(namespace, service("next"))
    assert wait_for("reuse", lambda: ingress(core, namespace, "next")) == ["198.51.100.250"]


def test_a_config_change_moves_addresses_that_left_the_pool(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: a, addresses: [198.51.100.10]}]")
    run_controller()
    core.create_namespaced_service(namespace, service("web"))
    assert wait_for("web", lambda: ingress(core, namespace, "web")) == ["198.51.100.10"]
    put_config(core, namespace, "pools: [{name: b, addresses: [198.51.100.20]}]")
    assert wait_for("the move", lambda: ingress(core, namespace, "web") == ["198.51.100.20"])
    wait_for(
        "ClearAssignment",
        lambda: [e for e in events(core, namespace, "web") if e[1] == "ClearAssignment"],
    )


def test_a_bad_config_keeps_the_last_good_one(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: a, addresses: [198.51.100.10/31]}]")
    ctl = run_controller()
    core.create_namespaced_service(namespace, service("web"))
    wait_for("web", lambda: ingress(core, namespace, "web"))
    assert ctl.metric("lbctl_config_stale") == 0
    put_config(core, namespace, "pools: [{name: a, addresses: [198.51.100.10/31]}]\nbogus: 1")
    wait_for(
        "InvalidConfig on the ConfigMap",
        lambda: [
            e
            for e in events(core, namespace, "lbctl-config", kind="ConfigMap")
            if e[1] == "InvalidConfig" and "bogus: unknown key" in e[2]
        ],
    )
    assert ctl.metric("lbctl_config_stale") == 1
    core.create_namespaced_service(namespace, service("next"))
    assert wait_for("next", lambda: ingress(core, namespace, "next")) == ["198.51.100.11"]
    assert ingress(core, namespace, "web") == ["198.51.100.10"]


def test_without_a_config_nothing_is_allocated_and_the_service_says_why(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    run_controller()
    core.create_namespaced_service(namespace, service("web"))
    wait_for("NoConfig", lambda: [e for e in events(core, namespace, "web") if "NoConfig" in e[2]])
    assert ingress(core, namespace, "web") == []
    put_config(core, namespace, POOL)
    assert wait_for("web", lambda: ingress(core, namespace, "web")) == ["198.51.100.200"]


def test_node_addresses_are_never_handed_out(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    node = f"node-{namespace}"[:63]
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=node)))
    try:
        core.patch_node_status(
            node, {"status": {"addresses": [{"type": "InternalIP", "address": "198.51.100.200"}]}}
        )
        put_config(core, namespace, POOL)
        run_controller()
        core.create_namespaced_service(
            namespace,
            service("wants-node-ip", annotations={"lbctl.io/loadBalancerIPs": "198.51.100.200"}),
        )
        core.create_namespaced_service(namespace, service("auto"))
        assert wait_for("auto", lambda: ingress(core, namespace, "auto")) == ["198.51.100.201"]
        wait_for(
            "a warning naming the node",
            lambda: [e for e in events(core, namespace, "wants-node-ip") if f"node {node}" in e[2]],
        )
    finally:
        core.delete_node(node)


def test_a_restart_rebuilds_from_status_and_writes_nothing(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    first = run_controller("ctl-a")
    for i in range(3):  # the pool has four IPv4 addresses: one stays free for "late"
        core.create_namespaced_service(namespace, service(f"s{i}"))
    for i in range(3):
        wait_for(f"s{i}", lambda i=i: ingress(core, namespace, f"s{i}"))
    before = {
        s.metadata.name: (s.metadata.resource_version, ingress(core, namespace, s.metadata.name))
        for s in core.list_namespaced_service(namespace).items
    }
    first.proc.stop()
    second = run_controller("ctl-b")
    wait_for("the new controller to lead", lambda: second.metric("lbctl_leader") == 1)
    # A new Service proves the controller works; it must not take anyone's address.
    core.create_namespaced_service(namespace, service("late"))
    late = wait_for("late", lambda: ingress(core, namespace, "late"))
    assert late[0] not in {ip for _, ips in before.values() for ip in ips}
    after = {
        s.metadata.name: (s.metadata.resource_version, ingress(core, namespace, s.metadata.name))
        for s in core.list_namespaced_service(namespace).items
        if s.metadata.name != "late"
    }
    assert after == before


def test_two_controllers_never_both_write(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    a = run_controller("ctl-a")
    wait_for("ctl-a to lead", lambda: a.metric("lbctl_leader") == 1)
    b = run_controller("ctl-b")
    for i in range(3):
        core.create_namespaced_service(namespace, service(f"s{i}"))
    for i in range(3):
        wait_for(f"s{i}", lambda i=i: ingress(core, namespace, f"s{i}"))
    assert a.writes() > 0 and b.writes() == 0 and b.metric("lbctl_leader") == 0
    # Allocation metrics come from the leader alone, so two replicas never double-count.
    assert not [k for k in metrics(b.port) if k.startswith("lbctl_allocator_")]
    # SIGTERM hands the lease back: the standby takes over without waiting for expiry.
    a.proc.stop()
    wait_for("ctl-b to lead", lambda: b.metric("lbctl_leader") == 1, timeout=5)
    core.create_namespaced_service(namespace, service("after"))
    assert wait_for("after", lambda: ingress(core, namespace, "after"))
    ips = [ingress(core, namespace, f"s{i}")[0] for i in range(3)]
    assert len(set(ips + ingress(core, namespace, "after"))) == 4
    assigned = [k for k in metrics(b.port) if k.startswith("lbctl_allocator_address_assigned")]
    assert len([k for k in assigned if f'service="{namespace}/' in k]) == 4


def test_lbctl_status_shows_addresses_pending_reasons_and_pools(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    put_config(core, namespace, "pools: [{name: one, addresses: [198.51.100.250]}]")
    run_controller()
    core.create_namespaced_service(namespace, service("first"))
    wait_for("first", lambda: ingress(core, namespace, "first"))
    core.create_namespaced_service(namespace, service("second"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbctl",
            "status",
            f"--kubeconfig={apiserver.kubeconfig}",
            f"--namespace={namespace}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(namespace)}
    assert "198.51.100.250" in lines[f"{namespace}/first"]
    assert "no free IPv4 address in pool(s) one" in lines[f"{namespace}/second"]
    assert any(line.split()[:5] == ["one", "IPv4", "1", "1", "0"] for line in out.splitlines())


def test_a_hand_edited_status_claiming_another_services_address_is_undone(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(namespace, service("older"))
    theirs = wait_for("older", lambda: ingress(core, namespace, "older"))
    core.create_namespaced_service(namespace, service("younger"))
    wait_for("younger", lambda: ingress(core, namespace, "younger"))
    core.patch_namespaced_service_status(
        "younger", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": theirs[0]}]}}}
    )
    wait_for(
        "ClearAssignment on younger",
        lambda: [
            e
            for e in events(core, namespace, "younger")
            if e[1] == "ClearAssignment" and f"held by {namespace}/older" in e[2]
        ],
    )
    fixed = wait_for(
        "younger re-allocated",
        lambda: (ips := ingress(core, namespace, "younger")) != theirs and ips,
    )
    assert fixed and fixed != theirs
    assert ingress(core, namespace, "older") == theirs
    assert check_findings(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == []


def test_a_status_outside_every_pool_is_replaced(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(namespace, service("web"))
    wait_for("web", lambda: ingress(core, namespace, "web"))
    core.patch_namespaced_service_status(
        "web", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.77"}]}}}
    )
    wait_for(
        "an event naming the stray address",
        lambda: [
            e
            for e in events(core, namespace, "web")
            if e[1] == "ClearAssignment" and "192.0.2.77 is in no configured pool" in e[2]
        ],
    )
    assert wait_for(
        "a pool address again",
        lambda: (ips := ingress(core, namespace, "web")) != ["192.0.2.77"] and ips,
    )
    assert check_findings(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == []
