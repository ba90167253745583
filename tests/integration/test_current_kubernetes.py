"""What only a current API server can show: fields that Kubernetes 1.20 dropped on the floor.

``spec.loadBalancerClass`` (1.24 GA), ``status.loadBalancer.ingress[].ipMode`` (1.32 GA),
``spec.allocateLoadBalancerNodePorts`` (1.24 GA) and dual-stack Services with no feature gate
(1.23 GA), each against the real kube-apiserver the suite runs.
"""

from __future__ import annotations

from collections.abc import Callable

from kube_helpers import ControllerProcess, events, ingress, metrics, put_config, service, wait_for
from kubernetes import client

POOL = """
pools:
  - name: lan
    addresses: [198.51.100.200-198.51.100.203, "2001:db8:1::/126"]
"""

Start = Callable[..., ControllerProcess]


def test_the_server_is_a_current_release(api_client: client.ApiClient) -> None:
    info = client.VersionApi(api_client).get_code()
    assert (int(info.major), int(info.minor.rstrip("+"))) >= (1, 34), info.git_version


def test_a_service_of_another_load_balancer_class_is_never_touched(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(
        namespace, service("theirs", load_balancer_class="example.com/other")
    )
    core.create_namespaced_service(namespace, service("ours", load_balancer_class="lbctl.io/l2"))
    core.create_namespaced_service(namespace, service("classless"))
    assert wait_for("ours", lambda: ingress(core, namespace, "ours"))
    assert wait_for("the class-less one", lambda: ingress(core, namespace, "classless"))
    theirs = core.read_namespaced_service("theirs", namespace)
    assert theirs.spec.load_balancer_class == "example.com/other"  # the server kept the field
    assert theirs.status.load_balancer.ingress is None
    assert theirs.metadata.finalizers is None and theirs.metadata.annotations is None
    assert events(core, namespace, "theirs") == []


def test_ip_mode_vip_is_written_read_back_and_never_rewritten(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    ctl = run_controller()
    core.create_namespaced_service(namespace, service("web"))
    wait_for("an address", lambda: ingress(core, namespace, "web"))
    web = core.read_namespaced_service("web", namespace)
    assert [(i.ip, i.ip_mode) for i in web.status.load_balancer.ingress] == [
        ("198.51.100.200", "VIP")
    ]
    writes = metrics(ctl.port)['lbctl_api_writes_total{kind="status"}']
    # A later Service shows that the controller has gone on deciding since.
    core.create_namespaced_service(namespace, service("later"))
    wait_for("the later Service's address", lambda: ingress(core, namespace, "later"))
    again = core.read_namespaced_service("web", namespace)
    assert again.metadata.resource_version == web.metadata.resource_version
    assert metrics(ctl.port)['lbctl_api_writes_total{kind="status"}'] == writes + 1


def test_no_node_ports_is_no_obstacle_to_an_address(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    core.create_namespaced_service(
        namespace, service("noports", allocate_load_balancer_node_ports=False)
    )
    assert wait_for("an address", lambda: ingress(core, namespace, "noports"))
    svc = core.read_namespaced_service("noports", namespace)
    assert svc.spec.allocate_load_balancer_node_ports is False
    assert [p.node_port for p in svc.spec.ports] == [None]


def test_require_and_prefer_dual_stack_get_one_address_per_family_with_no_feature_gate(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, POOL)
    run_controller()
    for name, policy in (("require", "RequireDualStack"), ("prefer", "PreferDualStack")):
        core.create_namespaced_service(
            namespace, service(name, ip_family_policy=policy, ip_families=["IPv4", "IPv6"])
        )
    require = wait_for("RequireDualStack", lambda: ingress(core, namespace, "require"))
    prefer = wait_for("PreferDualStack", lambda: ingress(core, namespace, "prefer"))
    for got in (require, prefer):
        assert [":" in ip for ip in got] == [False, True], got
    assert len({*require, *prefer}) == 4
    svc = core.read_namespaced_service("require", namespace)
    assert svc.spec.ip_families == ["IPv4", "IPv6"] and len(svc.spec.cluster_ips) == 2
