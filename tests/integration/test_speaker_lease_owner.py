"""A speaker's Lease belongs to its Pod: it goes with the Pod even when the speaker could not
delete it (``helm uninstall`` removes the speaker's RBAC while the Pod is still stopping)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kube_helpers import wait_for
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lbctl import leases
from lbctl.kube import speakers
from lbctl.lab import controlplane

NS = "default"


def pod(core: client.CoreV1Api, name: str) -> client.V1Pod:
    body = {
        "metadata": {"name": name},
        "spec": {"nodeName": "node1",
                 "containers": [{"name": "speaker", "image": "lbctl.invalid/lbctl:none"}]},
    }  # fmt: skip
    return wait_for(f"Pod {name} (admission waits for the default ServiceAccount)",
                    lambda: _create(core, body), timeout=30, interval=0.2)  # fmt: skip


def _create(core: client.CoreV1Api, body: dict[str, object]) -> client.V1Pod | None:
    try:
        return core.create_namespaced_pod(NS, body)
    except ApiException as exc:
        if exc.status in (403, 500):
            return None
        raise


def lease_of(coord: client.CoordinationV1Api) -> client.V1Lease | None:
    try:
        return coord.read_namespaced_lease(leases.lease_name("node1"), NS)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_a_speakers_lease_goes_with_its_pod_even_when_the_speaker_cannot_delete_it(
    planes: Callable[..., controlplane.ControlPlane], tmp_path: Path
) -> None:
    cp = planes()
    cp.start_controller_manager(extra=("garbagecollector",))
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    core, coord = client.CoreV1Api(api), client.CoordinationV1Api(api)
    first = pod(core, "lbctl-speaker-aaaaa")
    own = speakers.OwnLease(
        coord, namespace=NS, node="node1", timings=speakers.LeaseTimings(),
        pod=speakers.PodRef(first.metadata.name, first.metadata.uid),
    )  # fmt: skip
    assert own.renew()
    refs = lease_of(coord).metadata.owner_references  # type: ignore[union-attr]
    assert [(r.kind, r.name, r.uid) for r in refs] == [("Pod", first.metadata.name,
                                                         first.metadata.uid)]  # fmt: skip

    # A new Pod on the node (a DaemonSet update) takes the Lease over, owner included.
    second = pod(core, "lbctl-speaker-bbbbb")
    own.pod = speakers.PodRef(second.metadata.name, second.metadata.uid)
    assert own.renew()
    refs = lease_of(coord).metadata.owner_references  # type: ignore[union-attr]
    assert [r.uid for r in refs] == [second.metadata.uid]

    # The speaker never deletes its Lease (it was cut off); its Pod goes: so does the Lease.
    core.delete_namespaced_pod(second.metadata.name, NS, grace_period_seconds=0)
    wait_for("the garbage collector to delete the Lease", lambda: lease_of(coord) is None,
             timeout=60, interval=0.2)  # fmt: skip
    api.close()
