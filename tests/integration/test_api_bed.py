"""The API server under the tests is real: NodePorts, the status subresource, watches, Leases."""

from __future__ import annotations

import datetime
import threading

from kubernetes import client, watch


def lb_service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            type="LoadBalancer",
            ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
        ),
    )


def test_loadbalancer_service_gets_a_node_port_from_the_api_server(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    svc = core.create_namespaced_service(namespace, lb_service("web"))
    assert svc.spec.type == "LoadBalancer"
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    assert svc.status.load_balancer.ingress is None


def test_status_patch_arrives_on_a_watch(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_service(namespace, lb_service("web"))
    seen: list[str] = []
    started = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        started.set()
        for event in w.stream(
            core.list_namespaced_service,
            namespace,
            resource_version=created.metadata.resource_version,
            timeout_seconds=20,
        ):
            ingress = event["object"].status.load_balancer.ingress
            if ingress:
                seen.append(ingress[0].ip)
                w.stop()

    thread = threading.Thread(target=watcher)
    thread.start()
    started.wait()
    core.patch_namespaced_service_status(
        "web", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}]}}}
    )
    thread.join(25)
    assert seen == ["198.51.100.200"]
    # The status subresource changed status only; spec is untouched.
    after = core.read_namespaced_service("web", namespace)
    assert after.spec.ports[0].node_port == created.spec.ports[0].node_port


def test_lease_is_created_and_renewed(api_client: client.ApiClient, namespace: str) -> None:
    coord = client.CoordinationV1Api(api_client)
    now = datetime.datetime.now(datetime.UTC)
    lease = coord.create_namespaced_lease(
        namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="lbctl-speaker-node1"),
            spec=client.V1LeaseSpec(
                holder_identity="node1", lease_duration_seconds=10, acquire_time=now, renew_time=now
            ),
        ),
    )
    later = now + datetime.timedelta(seconds=2)
    lease.spec.renew_time = later
    renewed = coord.replace_namespaced_lease("lbctl-speaker-node1", namespace, lease)
    assert renewed.spec.renew_time > now
    assert renewed.metadata.resource_version != lease.metadata.resource_version
    assert coord.read_namespaced_lease("lbctl-speaker-node1", namespace).spec.holder_identity == (
        "node1"
    )
