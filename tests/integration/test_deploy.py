"""deploy/ against the real API server: it validates server-side, and its RBAC is least privilege
as the real RBAC authorizer sees it (``kubectl auth can-i`` as each ServiceAccount)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from lbctl.lab import controlplane

DEPLOY = Path(__file__).parents[2] / "deploy"
NS = "lbctl-system"


def kubectl(
    cp: controlplane.ControlPlane, binaries: dict[str, Path], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries["kubectl"]), f"--kubeconfig={cp.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


@pytest.fixture
def lbctl_system(
    apiserver: controlplane.ControlPlane, api_client: client.ApiClient, binaries: dict[str, Path]
) -> Iterator[None]:
    core = client.CoreV1Api(api_client)
    if NS not in [n.metadata.name for n in core.list_namespace().items]:
        core.create_namespace({"metadata": {"name": NS}})
    kubectl(apiserver, binaries, "apply", "-n", NS, "-f", str(DEPLOY / "rbac.yaml"))
    try:
        yield
    finally:
        kubectl(
            apiserver,
            binaries,
            "delete",
            "-n",
            NS,
            "-f",
            str(DEPLOY / "rbac.yaml"),
            "--ignore-not-found",
            check=False,
        )


def test_the_kustomize_base_is_accepted_by_the_api_server(
    apiserver: controlplane.ControlPlane, binaries: dict[str, Path], lbctl_system: None
) -> None:
    run = kubectl(apiserver, binaries, "apply", "-k", str(DEPLOY), "--dry-run=server", check=False)
    assert run.returncode == 0, run.stderr
    for kind in (
        "deployment.apps/lbctl-controller",
        "daemonset.apps/lbctl-speaker",
        "configmap/lbctl-config",
        "clusterrole.rbac.authorization.k8s.io/lbctl-speaker",
        "validatingadmissionpolicy.admissionregistration.k8s.io/lbctl-speaker-leases",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/lbctl-controller-leases",
    ):
        assert kind in run.stdout


CONTROLLER = "system:serviceaccount:lbctl-system:lbctl-controller"
SPEAKER = "system:serviceaccount:lbctl-system:lbctl-speaker"
CAN = [
    (CONTROLLER, "list services -A"),
    (CONTROLLER, "watch services -A"),
    (CONTROLLER, "patch services -n default"),
    (CONTROLLER, "patch services --subresource=status -n default"),
    (CONTROLLER, "list nodes"),
    (CONTROLLER, "list namespaces"),
    (CONTROLLER, "watch namespaces"),
    (CONTROLLER, "get namespaces/default"),
    (CONTROLLER, "create events -n default"),
    (CONTROLLER, "watch configmaps -n lbctl-system"),
    (CONTROLLER, "update leases/lbctl-controller -n lbctl-system"),
    (CONTROLLER, "watch leases -n lbctl-system"),  # the speakers' conflict reports
    (SPEAKER, "list services -A"),
    (SPEAKER, "list endpointslices.discovery.k8s.io -A"),
    (SPEAKER, "list nodes"),
    (SPEAKER, "create events -n default"),
    (SPEAKER, "patch leases -n lbctl-system"),
    (SPEAKER, "watch configmaps -n lbctl-system"),
]
CANNOT = [
    (CONTROLLER, "get secrets -A"),
    (CONTROLLER, "list secrets -n lbctl-system"),
    (CONTROLLER, "create services -n default"),
    (CONTROLLER, "delete services -n default"),
    (CONTROLLER, "update services -n default"),
    (CONTROLLER, "get configmaps -n default"),
    (CONTROLLER, "update leases/someone-else -n lbctl-system"),
    (CONTROLLER, "patch leases/lbctl-speaker-n1 -n lbctl-system"),
    (CONTROLLER, "delete leases -n lbctl-system"),
    (CONTROLLER, "list leases -n default"),
    (CONTROLLER, "patch nodes"),
    (CONTROLLER, "patch namespaces/default"),
    (CONTROLLER, "update namespaces/default"),
    (CONTROLLER, "create namespaces"),
    (CONTROLLER, "delete namespaces/default"),
    (SPEAKER, "list namespaces"),
    (CONTROLLER, "get pods -A"),
    (SPEAKER, "get secrets -A"),
    (SPEAKER, "patch services -n default"),
    (SPEAKER, "patch services --subresource=status -n default"),
    (SPEAKER, "patch nodes"),
    (SPEAKER, "patch leases -n default"),
    (SPEAKER, "delete configmaps -n lbctl-system"),
]


CASES = [(who, what, "yes") for who, what in CAN] + [(who, what, "no") for who, what in CANNOT]


@pytest.mark.parametrize(
    ("who", "what", "answer"),
    CASES,
    ids=[f"{w.rsplit(':', 1)[1]} {'can' if a == 'yes' else 'cannot'} {q}" for w, q, a in CASES],
)
def test_rbac_as_the_authorizer_sees_it(
    apiserver: controlplane.ControlPlane,
    binaries: dict[str, Path],
    lbctl_system: None,
    who: str,
    what: str,
    answer: str,
) -> None:
    run = kubectl(apiserver, binaries, "auth", "can-i", *what.split(), f"--as={who}", check=False)
    assert run.stdout.strip() == answer, run.stdout + run.stderr
