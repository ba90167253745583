"""helm install, upgrade and uninstall against a real API server, with lbctl's controller
running under the chart's own ServiceAccount (there is no kubelet: the test runs the process
the Deployment would run, with the Pod's credentials and settings)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helm_helpers import CHART, run
from kube_helpers import controller_argv, ingress, service, wait_for
from kubernetes import client, config

from lbctl.lab import controlplane, procs
from lbctl.lab.lab import service_account_token

NS = "lbctl-system"
APPS = "apps"
ADDRESSES = ["198.51.100.200", "198.51.100.201", "198.51.100.202"]


def pool(last: int) -> str:
    return json.dumps(
        {"pools": [{"name": "lan", "addresses": [f"198.51.100.200-198.51.100.{last}"]}]}
    )


class Cluster:
    """One control plane of the test's own, helm against it, and lbctl controllers."""

    def __init__(self, cp: controlplane.ControlPlane, helm: Path, tmp: Path) -> None:
        self.cp, self.helm, self.tmp = cp, helm, tmp
        self.api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.controllers: list[procs.Process] = []

    def helm_run(self, *args: str) -> str:
        return run(self.helm, *args, kubeconfig=self.cp.kubeconfig).stdout

    def start_controller(self, identity: str) -> procs.Process:
        """What the chart's Deployment runs: its ServiceAccount, LBCTL_* from the chart."""
        token = service_account_token(self.core, NS, "lbctl-controller")
        kubeconfig = self.cp.write_kubeconfig(
            self.tmp / f"{identity}.kubeconfig", token=token, user="lbctl-controller"
        )
        port = procs.free_port()
        argv = controller_argv(kubeconfig, NS, identity, port, extra=("--log-format=json",))
        proc = procs.Process(identity, argv, log=self.tmp / f"{identity}.log").start()
        self.controllers.append(proc)
        return proc

    def lease_holder(self) -> str:
        lease = client.CoordinationV1Api(self.api).read_namespaced_lease("lbctl-controller", NS)
        return str(lease.spec.holder_identity or "")

    def ours(self) -> dict[str, list[str]]:
        """Every object of lbctl's kinds in its namespace, and its cluster-wide RBAC."""
        rbac = client.RbacAuthorizationV1Api(self.api)
        apps = client.AppsV1Api(self.api)
        found = {
            "configmaps": self.core.list_namespaced_config_map(NS).items,
            "serviceaccounts": self.core.list_namespaced_service_account(NS).items,
            "leases": client.CoordinationV1Api(self.api).list_namespaced_lease(NS).items,
            "roles": rbac.list_namespaced_role(NS).items,
            "rolebindings": rbac.list_namespaced_role_binding(NS).items,
            "deployments": apps.list_namespaced_deployment(NS).items,
            "daemonsets": apps.list_namespaced_daemon_set(NS).items,
            "clusterroles": [r for r in rbac.list_cluster_role().items
                             if r.metadata.name.startswith("lbctl")],
            "clusterrolebindings": [r for r in rbac.list_cluster_role_binding().items
                                    if r.metadata.name.startswith("lbctl")],
        }  # fmt: skip
        return {kind: sorted(o.metadata.name for o in objs) for kind, objs in found.items() if objs}

    def close(self) -> None:
        for proc in self.controllers:
            proc.stop()
        self.api.close()


@pytest.fixture
def cluster(
    helm: Path, planes: Callable[..., controlplane.ControlPlane], tmp_path: Path
) -> Iterator[Cluster]:
    # Its own API server: cluster-wide names (ClusterRole lbctl-controller) must be free.
    the = Cluster(planes(), helm, tmp_path)
    try:
        yield the
    finally:
        the.close()


def addresses(core: client.CoreV1Api) -> dict[str, list[str]]:
    return {s.metadata.name: ingress(core, APPS, s.metadata.name)
            for s in core.list_namespaced_service(APPS).items}  # fmt: skip


def every_ip(held: dict[str, list[str]]) -> list[str]:
    return sorted(ip for ips in held.values() for ip in ips)


def test_install_then_upgrade_with_a_changed_pool_moves_no_address(cluster: Cluster) -> None:
    out = cluster.helm_run(
        "install", "lbctl", str(CHART), "-n", NS, "--create-namespace",
        "--set-json", f"config={pool(201)}",
    )  # fmt: skip
    assert "STATUS: deployed" in out
    ctl = cluster.start_controller("lbctl-controller-7d9f-a")
    cluster.core.create_namespace({"metadata": {"name": APPS}})
    for name in ("a", "b", "c"):
        cluster.core.create_namespaced_service(APPS, service(name))
    wait_for(
        "a and b to get the pool's two addresses",
        lambda: every_ip(addresses(cluster.core)) == ADDRESSES[:2],
    )
    before = addresses(cluster.core)
    assert before["c"] == []  # the pool is full: c waits (PoolExhausted)
    assert cluster.lease_holder() == "lbctl-controller-7d9f-a"  # the chart's Lease, filled in

    out = cluster.helm_run(
        "upgrade", "lbctl", str(CHART), "-n", NS, "--set-json", f"config={pool(203)}",
        "--set", "controller.replicas=3",
    )  # fmt: skip
    assert "REVISION: 2" in out
    got = wait_for("c to get an address from the grown pool", lambda: addresses(cluster.core)["c"])
    assert got == [ADDRESSES[2]]
    after = addresses(cluster.core)
    assert {k: after[k] for k in ("a", "b")} == {k: before[k] for k in ("a", "b")}
    # The upgrade rewrote the Lease's metadata only: the leader kept it, nobody re-elected.
    assert cluster.lease_holder() == "lbctl-controller-7d9f-a"
    # Logs as the chart's logFormat asked: one JSON object a line.
    lines = [json.loads(line) for line in ctl.log.read_text().splitlines() if line.strip()]
    assert any("config loaded" in entry["message"] for entry in lines)


def test_uninstall_leaves_only_the_services_own_state_and_a_reinstall_keeps_the_addresses(
    cluster: Cluster,
) -> None:
    cluster.helm_run("install", "lbctl", str(CHART), "-n", NS, "--create-namespace",
                     "--set-json", f"config={pool(203)}")  # fmt: skip
    chart_objects = cluster.ours()
    assert chart_objects["leases"] == ["lbctl-controller"]
    cluster.start_controller("lbctl-controller-1")
    cluster.core.create_namespace({"metadata": {"name": APPS}})
    for name in ("a", "b"):
        cluster.core.create_namespaced_service(APPS, service(name))
    wait_for("addresses", lambda: all(addresses(cluster.core).values()))
    held = addresses(cluster.core)

    out = cluster.helm_run("uninstall", "lbctl", "-n", NS)
    assert "uninstalled" in out
    for proc in cluster.controllers:  # the Pods go with their Deployment
        proc.stop()
    assert cluster.ours() == {}  # nothing of ours in the namespace or the cluster
    # What stays is on the user's Services, on purpose: their addresses (the state a new
    # install restores from), the pool annotation, and our finalizer, which a running
    # controller removes when a Service is deleted (README: Uninstall).
    for name in ("a", "b"):
        svc: Any = cluster.core.read_namespaced_service(name, APPS)
        assert ingress(cluster.core, APPS, name) == held[name]
        assert svc.metadata.finalizers == ["service.kubernetes.io/load-balancer-cleanup"]
        assert svc.metadata.annotations["lbctl.io/allocated-from-pool"] == "lan"

    cluster.helm_run("install", "lbctl", str(CHART), "-n", NS,
                     "--set-json", f"config={pool(203)}")  # fmt: skip
    cluster.start_controller("lbctl-controller-2")
    cluster.core.create_namespaced_service(APPS, service("new"))
    wait_for("the new Service's address", lambda: addresses(cluster.core)["new"])
    now = addresses(cluster.core)
    assert {k: now[k] for k in held} == held  # restored from status, not re-allocated
    assert now["new"][0] not in every_ip(held)

    # The way out the README gives: delete the Services while the controller runs, then
    # uninstall. Nothing of ours is left anywhere.
    for name in ("a", "b", "new"):
        cluster.core.delete_namespaced_service(name, APPS, _preload_content=False)
    wait_for("the Services to go", lambda: not cluster.core.list_namespaced_service(APPS).items)
    cluster.helm_run("uninstall", "lbctl", "-n", NS)
    for proc in cluster.controllers:
        proc.stop()
    assert cluster.ours() == {}
