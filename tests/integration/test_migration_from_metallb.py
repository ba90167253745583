"""Switching from MetalLB without moving an address, on the real API server.

Services whose status and annotations MetalLB wrote (as its controller writes them: the
addresses in ``status.loadBalancer.ingress`` and the pool in the annotation
``metallb.universe.tf/ip-allocated-from-pool``, ``metallb.io/...`` from v0.15), MetalLB's
resources converted by the real ``lbctl convert --from metallb``, then the real controller: it
restores every address, writes no status, and only adds its finalizer and annotation.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kube_helpers import ControllerProcess, events, lbctl_check, put_config, wait_for
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from lbctl import objects
from lbctl.lab import controlplane

Start = Callable[..., ControllerProcess]
OLD = "metallb.universe.tf/"  # MetalLB v0.13 and v0.14
NEW = "metallb.io/"  # MetalLB v0.15

# What `kubectl get ipaddresspools,l2advertisements -n metallb-system -o yaml` holds; NS is the
# label the team pool selects namespaces by.
RESOURCES = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.51.100.200-198.51.100.219, "2001:db8:5::/124"]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: team, namespace: metallb-system}
spec:
  addresses: [198.51.100.220-198.51.100.229]
  serviceAllocation:
    priority: 10
    namespaceSelectors:
      - matchLabels: {lbctl-test/migration: NS}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: fixed, namespace: metallb-system}
spec:
  addresses: [198.51.100.230-198.51.100.239]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: everywhere, namespace: metallb-system}
spec:
  ipAddressPools: [lan, fixed]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: team-nodes, namespace: metallb-system}
spec:
  ipAddressPools: [team]
  nodeSelectors:
    - matchLabels: {lbctl-test/edge: "true"}
"""

# name → (what the user wrote, what MetalLB wrote: its pool annotation and the addresses)
SERVICES: dict[str, tuple[dict[str, Any], dict[str, str], list[str]]] = {
    "web": ({}, {OLD + "ip-allocated-from-pool": "team"}, ["198.51.100.220"]),
    "by-pool": (
        {"annotations": {OLD + "address-pool": "lan"}},
        {OLD + "ip-allocated-from-pool": "lan"},
        ["198.51.100.200"],
    ),
    "pinned": (
        {"annotations": {OLD + "loadBalancerIPs": "198.51.100.205"}},
        {OLD + "ip-allocated-from-pool": "lan"},
        ["198.51.100.205"],
    ),
    "by-spec": (
        {"spec": {"loadBalancerIP": "198.51.100.207"}},
        {OLD + "ip-allocated-from-pool": "lan"},
        ["198.51.100.207"],
    ),
    "fixed": (
        {"annotations": {OLD + "address-pool": "fixed"}},
        {OLD + "ip-allocated-from-pool": "fixed"},
        ["198.51.100.230"],
    ),
    "dual": (
        {
            "annotations": {OLD + "address-pool": "lan"},
            "spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]},
        },
        {OLD + "ip-allocated-from-pool": "lan"},
        ["198.51.100.201", "2001:db8:5::3"],
    ),
    "shared-http": (
        {"annotations": {OLD + "allow-shared-ip": "front", OLD + "address-pool": "lan"}},
        {OLD + "ip-allocated-from-pool": "lan"},
        ["198.51.100.202"],
    ),
    "shared-https": (
        {
            "annotations": {OLD + "allow-shared-ip": "front", OLD + "address-pool": "lan"},
            "ports": [443],
        },
        {OLD + "ip-allocated-from-pool": "lan"},
        ["198.51.100.202"],
    ),
    "newer": (
        {"annotations": {NEW + "loadBalancerIPs": "198.51.100.206"}},
        {NEW + "ip-allocated-from-pool": "lan"},
        ["198.51.100.206"],
    ),
}


def lbctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbctl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def metallb_service(core: client.CoreV1Api, ns: str, name: str) -> None:
    """Create a Service as its user did, then let "MetalLB" write what its controller writes."""
    user, written, ips = SERVICES[name]
    ports = [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in user.get("ports", [80])]
    body = {
        "metadata": {"name": name, "annotations": dict(user.get("annotations", {}))},
        "spec": {"type": "LoadBalancer", "ports": ports, **user.get("spec", {})},
    }
    core.create_namespaced_service(ns, body)
    # MetalLB patches the annotation on the object and the addresses on status (no ipMode).
    core.patch_namespaced_service(name, ns, {"metadata": {"annotations": written}})
    core.patch_namespaced_service_status(
        name, ns, {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
    )


def snapshot(core: client.CoreV1Api, ns: str) -> dict[str, dict[str, Any]]:
    """Each Service's labels, annotations, finalizers, spec and status, as raw dicts."""
    api = core.api_client
    out = {}
    for svc in core.list_namespaced_service(ns).items:
        raw = api.sanitize_for_serialization(svc)
        meta = raw["metadata"]
        out[meta["name"]] = {
            "labels": meta.get("labels", {}),
            "annotations": meta.get("annotations", {}),
            "finalizers": meta.get("finalizers", []),
            "spec": raw["spec"],
            "status": raw["status"],
        }
    return out


def test_services_keep_their_addresses_when_lbctl_replaces_metallb(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
    tmp_path: Path,
) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": {"lbctl-test/migration": namespace}}})
    # 1. MetalLB's resources, converted and validated by the real CLI.
    resources = tmp_path / "metallb.yaml"
    resources.write_text(RESOURCES.replace("NS", namespace))
    converted = lbctl("convert", "--from", "metallb", str(resources))
    assert converted.returncode == 0, converted.stderr
    assert lbctl("validate", "-", stdin=converted.stdout).returncode == 0
    configmap = yaml.safe_load(converted.stdout)
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "lbctl-config"
    config_text = configmap["data"]["config.yaml"]

    # 2. The cluster as MetalLB left it.
    for name in SERVICES:
        metallb_service(core, namespace, name)
    before = snapshot(core, namespace)
    for name, (_, _, ips) in SERVICES.items():
        assert [i["ip"] for i in before[name]["status"]["loadBalancer"]["ingress"]] == ips
    version = core.list_namespaced_service(namespace).metadata.resource_version

    # 3. Every change to the Services from now on, as a watch sees it.
    seen: list[tuple[str, list[str]]] = []
    watcher = watch.Watch()

    def follow() -> None:
        stream = watcher.stream(
            core.list_namespaced_service, namespace, resource_version=version, timeout_seconds=120
        )
        with contextlib.suppress(ProtocolError):  # the connection closes on stop()
            for event in stream:
                obj = core.api_client.sanitize_for_serialization(event["object"])
                seen.append((obj["metadata"]["name"], objects.ingress_ips(obj)))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()

    # 4. lbctl's ConfigMap, as converted, and its controller.
    put_config(core, namespace, config_text)
    ctl = run_controller()

    def adopted() -> bool:
        now = snapshot(core, namespace)
        return all(
            objects.FINALIZER in s["finalizers"] and objects.ANN_ALLOCATED_FROM in s["annotations"]
            for s in now.values()
        )

    wait_for("lbctl to adopt every Service", adopted, timeout=30)
    after = snapshot(core, namespace)
    wait_for("the watch to see every adoption", lambda: {n for n, _ in seen} == set(SERVICES))
    watcher.stop()

    # Every Service keeps its address; no status was written at all.
    assert ctl.writes("status") == 0
    for name, (_, written, _) in SERVICES.items():
        was, now = before[name], after[name]
        assert now["status"] == was["status"], name
        assert now["spec"] == was["spec"] and now["labels"] == was["labels"], name
        # Only our finalizer and our annotation are added; MetalLB's stay as they were.
        assert now["finalizers"] == [*was["finalizers"], objects.FINALIZER], name
        added = {k: v for k, v in now["annotations"].items() if k not in was["annotations"]}
        pool = next(iter(written.values()))
        assert added == {objects.ANN_ALLOCATED_FROM: pool}, name
        assert {k: now["annotations"][k] for k in was["annotations"]} == was["annotations"]
        assert not [e for e in events(core, namespace, name) if e[1] == "ClearAssignment"]
    for name, ingress in seen:  # not even for a moment
        assert ingress == SERVICES[name][2], (name, ingress)

    # lbctl check agrees (no speakers run here, so nobody announces: that alone is ignored).
    assert lbctl_check(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == (0, [])
