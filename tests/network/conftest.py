"""``speaker_lan``: a LAN of node namespaces running real ``lbctl speaker`` processes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from kube_helpers import put_config
from kubernetes import client
from speaker_helpers import SpeakerLan

from lbctl.lab import controlplane, lan


@pytest.fixture
def speaker_lan(
    make_lan: Callable[..., lan.Lan],
    apiserver: controlplane.ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
) -> Iterator[Callable[..., SpeakerLan]]:
    core = client.CoreV1Api(api_client)
    made: list[SpeakerLan] = []

    def build(
        nodes: int = 3,
        *,
        labels: dict[str, dict[str, str]] | None = None,
        config: str | None = None,
    ) -> SpeakerLan:
        hosts = [f"node{i + 1}" for i in range(nodes)]
        the_lan = make_lan([*hosts, "client"])
        kubeconfig = apiserver.write_kubeconfig(
            the_lan.workdir / "node.kubeconfig", host=str(the_lan.plan.gateway4)
        )
        sl = SpeakerLan(the_lan, core, namespace, str(kubeconfig), hosts)
        made.append(sl)
        for host in hosts:
            core.create_node(
                {
                    "metadata": {
                        "name": sl.node_name(host),
                        "labels": (labels or {}).get(host, {}),
                    },
                    "status": {},
                }
            )
        put_config(core, namespace, config or sl.pool())
        return sl

    try:
        yield build
    finally:
        for sl in made:
            for proc in sl.speakers.values():
                proc.stop(timeout=5)
            for host in sl.nodes:  # the LAN itself goes with make_lan's teardown
                with contextlib.suppress(client.exceptions.ApiException):
                    core.delete_node(sl.node_name(host))
