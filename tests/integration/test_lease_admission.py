"""deploy/admission.yaml with real Pod-bound tokens on the current API server (issue 14, item 5).

RBAC lets every speaker write every Lease of lbctl-system; the ValidatingAdmissionPolicies
narrow that to its own node's Lease (the node its Pod-bound token names) and the controller to
its leader Lease. Tokens come from the TokenRequest API, bound to Pods scheduled to Nodes, as
the kubelet gets them; the speaker's own Lease code (``OwnLease``) runs with them.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import wait_for
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lbctl import leases
from lbctl.kube import leader, speakers
from lbctl.lab import controlplane

DEPLOY = Path(__file__).parents[2] / "deploy"
NS = "lbctl-system"
SPEAKER_POLICY = "lbctl-speaker-leases"
CONTROLLER_POLICY = "lbctl-controller-leases"


def kubectl(cp: controlplane.ControlPlane, binaries: dict[str, Path], *args: str) -> None:
    run = subprocess.run(
        [str(binaries["kubectl"]), f"--kubeconfig={cp.kubeconfig}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


@pytest.fixture
def deployed(
    apiserver: controlplane.ControlPlane, api_client: client.ApiClient, binaries: dict[str, Path]
) -> Iterator[client.CoreV1Api]:
    """lbctl-system with deploy/'s RBAC and admission policies; removed afterwards."""
    core = client.CoreV1Api(api_client)
    if NS not in [n.metadata.name for n in core.list_namespace().items]:
        core.create_namespace({"metadata": {"name": NS}})
    files = [str(DEPLOY / "rbac.yaml"), str(DEPLOY / "admission.yaml")]
    kubectl(apiserver, binaries, "apply", "-n", NS, *(a for f in files for a in ("-f", f)))
    try:
        wait_until_enforced(apiserver, core)
        yield core
    finally:
        for lease in client.CoordinationV1Api(api_client).list_namespaced_lease(NS).items:
            client.CoordinationV1Api(api_client).delete_namespaced_lease(lease.metadata.name, NS)
        for pod in core.list_namespaced_pod(NS).items:
            core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
        kubectl(
            apiserver, binaries, "delete", "-n", NS, "--ignore-not-found",
            *(a for f in files for a in ("-f", f)),
        )  # fmt: skip


def wait_until_enforced(apiserver: controlplane.ControlPlane, core: client.CoreV1Api) -> None:
    """A new policy takes effect once the API server's informer has it (about a second):
    probe with a speaker token bound to nothing until its Lease write is refused."""
    token = core.create_namespaced_service_account_token(
        "lbctl-speaker", NS, {"spec": {"expirationSeconds": 600}}
    ).status.token
    path = apiserver.write_kubeconfig(
        apiserver.workdir / f"probe-{secrets.token_hex(3)}.kubeconfig", token=token, user="probe"
    )
    probe = config.new_client_from_config(config_file=str(path))
    admin = client.CoordinationV1Api(core.api_client)
    body = {"metadata": {"name": "lbctl-speaker-probe"}, "spec": {"holderIdentity": "probe"}}

    def refused() -> bool:
        try:
            client.CoordinationV1Api(probe).create_namespaced_lease(NS, body)
        except ApiException as exc:
            return exc.status == 403 and SPEAKER_POLICY in str(exc.body)
        admin.delete_namespaced_lease("lbctl-speaker-probe", NS)
        return False

    try:
        wait_for("the admission policies in force", refused, timeout=30, interval=0.2)
    finally:
        probe.close()


@pytest.fixture
def pod_token(
    apiserver: controlplane.ControlPlane, deployed: client.CoreV1Api, tmp_path: Path
) -> Iterator[Callable[..., client.ApiClient]]:
    """``pod_token(sa, node)``: an API client holding the token of ``sa`` bound to a Pod that
    runs on Node ``node`` (created here), as the kubelet would get it for that Pod."""
    core, made_nodes, clients = deployed, [], []

    def make(sa: str, node: str | None) -> client.ApiClient:
        spec: dict[str, Any] = {"expirationSeconds": 600}
        if node is not None:
            if node not in made_nodes:
                core.create_node({"metadata": {"name": node}})
                made_nodes.append(node)
            pod = core.create_namespaced_pod(
                NS,
                {
                    "metadata": {"name": f"{sa}-{secrets.token_hex(3)}"},
                    "spec": {
                        "serviceAccountName": sa,
                        "nodeName": node,
                        "containers": [{"name": "c", "image": "lbctl:test"}],
                    },
                },
            )
            meta = pod.metadata
            spec["boundObjectRef"] = {
                "kind": "Pod", "apiVersion": "v1", "name": meta.name, "uid": meta.uid,
            }  # fmt: skip
        token = core.create_namespaced_service_account_token(sa, NS, {"spec": spec}).status.token
        path = apiserver.write_kubeconfig(
            tmp_path / f"{sa}-{len(clients)}.kubeconfig", token=token, user=sa
        )
        api = config.new_client_from_config(config_file=str(path))
        clients.append(api)
        return api

    try:
        yield make
    finally:
        for api in clients:
            api.close()
        for node in made_nodes:
            core.delete_node(node)


def node_name() -> str:
    return f"adm-{secrets.token_hex(3)}"


def own_lease(api: client.ApiClient, node: str) -> speakers.OwnLease:
    return speakers.OwnLease(
        client.CoordinationV1Api(api),
        namespace=NS,
        node=node,
        timings=speakers.LeaseTimings(4, 1.0),
    )


def refused(call: Callable[[], object]) -> str:
    """The refusal's message of a call that must be refused by admission."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status in (403, 422), caught.value.body
    return str(caught.value.body)


def lease_body(name: str, holder: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 4},
    }


def test_a_speaker_token_writes_its_own_nodes_lease_and_nothing_else(
    pod_token: Callable[..., client.ApiClient], api_client: client.ApiClient
) -> None:
    mine, theirs = node_name(), node_name()
    api = pod_token("lbctl-speaker", mine)
    coord = client.CoordinationV1Api(api)

    # The speaker's own code: starting, renewing, joining, giving back, with this token.
    lease = own_lease(api, mine)
    lease.starting = True
    assert lease.renew() and lease.renew()
    lease.join()
    assert lease.fresh()
    got = client.CoordinationV1Api(api_client).read_namespaced_lease(leases.lease_name(mine), NS)
    assert got.spec.holder_identity == mine and not (got.metadata.annotations or {})
    lease.release()

    # Another node's Lease: neither created, nor renewed, nor deleted, nor held as ours.
    assert not own_lease(api, theirs).renew()
    message = refused(
        lambda: coord.create_namespaced_lease(NS, lease_body(leases.lease_name(theirs), theirs))
    )
    assert SPEAKER_POLICY in message and f"not lbctl-speaker-{theirs}" in message
    admin = client.CoordinationV1Api(api_client)
    admin.create_namespaced_lease(NS, lease_body(leases.lease_name(theirs), theirs))
    patch = {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}}
    assert SPEAKER_POLICY in refused(
        lambda: coord.patch_namespaced_lease(leases.lease_name(theirs), NS, patch)
    )
    assert SPEAKER_POLICY in refused(
        lambda: coord.delete_namespaced_lease(leases.lease_name(theirs), NS)
    )
    assert SPEAKER_POLICY in refused(
        lambda: coord.create_namespaced_lease(NS, lease_body(leases.lease_name(mine), theirs))
    )

    # The controller's Lease: not taken, not deleted, not created.
    assert SPEAKER_POLICY in refused(
        lambda: coord.create_namespaced_lease(NS, lease_body("lbctl-controller", mine))
    )
    admin.create_namespaced_lease(NS, lease_body("lbctl-controller", "ctl-a"))
    assert SPEAKER_POLICY in refused(
        lambda: coord.patch_namespaced_lease(
            "lbctl-controller", NS, {"spec": {"holderIdentity": mine}}
        )
    )
    assert SPEAKER_POLICY in refused(lambda: coord.delete_namespaced_lease("lbctl-controller", NS))
    assert admin.read_namespaced_lease("lbctl-controller", NS).spec.holder_identity == "ctl-a"


def test_a_speaker_token_bound_to_no_pod_writes_no_lease(
    pod_token: Callable[..., client.ApiClient],
) -> None:
    api = pod_token("lbctl-speaker", None)
    message = refused(
        lambda: client.CoordinationV1Api(api).create_namespaced_lease(
            NS, lease_body(leases.lease_name("node1"), "node1")
        )
    )
    assert SPEAKER_POLICY in message and "no node name" in message


def test_the_controller_token_writes_its_leader_lease_and_no_speakers(
    pod_token: Callable[..., client.ApiClient],
) -> None:
    api = pod_token("lbctl-controller", node_name())
    coord = client.CoordinationV1Api(api)
    # The controller's own election code, with this token: it creates, renews and releases.
    elector = leader.LeaderElector(
        client.CoordinationV1Api(api), namespace=NS, name="lbctl-controller", identity="ctl-a"
    )
    assert elector.try_acquire_or_renew() and elector.try_acquire_or_renew()
    assert elector.is_leader()
    elector.release()
    # RBAC already forbids it any other update; admission forbids it creating another Lease.
    message = refused(
        lambda: coord.create_namespaced_lease(NS, lease_body(leases.lease_name("n1"), "n1"))
    )
    assert CONTROLLER_POLICY in message and "only its leader Lease" in message
