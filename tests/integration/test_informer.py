"""The informer against a real API server: a watch from a compacted version gets 410, relists."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_helpers import service, wait_for
from kubernetes import client, config

from lbctl.kube.informer import Gone, Informer
from lbctl.lab import controlplane


@pytest.fixture(scope="module")
def uncached(
    binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[controlplane.ControlPlane]:
    """An API server whose watches go straight to etcd, so etcd compaction shows through."""
    cp = controlplane.ControlPlane(
        workdir=tmp_path_factory.mktemp("uncached"),
        binaries=binaries,
        apiserver_args=["--watch-cache=false"],
    )
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def test_a_compacted_resource_version_gets_410_and_the_informer_relists(
    uncached: controlplane.ControlPlane,
) -> None:
    api = config.new_client_from_config(config_file=str(uncached.kubeconfig))
    core = client.CoreV1Api(api)
    old = core.list_namespaced_service("default").metadata.resource_version
    core.create_namespaced_service("default", service("s0", type="ClusterIP"))
    uncached.compact_etcd()
    seen: list[tuple[str, str]] = []
    inf = Informer(
        "services",
        core.list_namespaced_service,
        lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
        namespace="default",
        watch_timeout=5,
    )
    stop = threading.Event()
    try:
        with pytest.raises(Gone):
            inf._watch(old, stop)
        thread = threading.Thread(target=inf.run, args=(stop,), daemon=True)
        thread.start()
        wait_for("the relist", inf.synced.is_set)
        assert ("ADDED", "s0") in seen  # what the broken watch missed, the relist brings
        core.create_namespaced_service("default", service("s1", type="ClusterIP"))
        wait_for("s1 through the new watch", lambda: ("ADDED", "s1") in seen)
    finally:
        stop.set()
        inf.stop()
        api.close()
