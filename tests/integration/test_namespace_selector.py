"""A pool that admits namespaces by label (namespaceSelector), with the real API server and the
real controller: the Namespace's labels decide, and a change of them re-decides its Services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kube_helpers import (
    ControllerProcess,
    events,
    ingress,
    lbctl_check,
    put_config,
    service,
    wait_for,
)
from kubernetes import client

from lbctl.lab import controlplane

Start = Callable[..., ControllerProcess]


def label_namespace(core: client.CoreV1Api, name: str, value: str | None) -> None:
    """Set (or with None, remove) the label ``lbctl-test/team`` of a Namespace."""
    core.patch_namespace(name, {"metadata": {"labels": {"lbctl-test/team": value}}})


def test_a_namespace_gets_the_pool_while_its_labels_match(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    # The selector names this test's namespace by a label only it will carry.
    put_config(
        core,
        namespace,
        f"""
pools:
  - name: team
    addresses: [198.51.100.210-198.51.100.211]
    namespaceSelector:
      matchLabels: {{lbctl-test/team: {namespace}}}
""",
    )
    run_controller()
    core.create_namespaced_service(namespace, service("web"))

    def refused() -> list[Any]:
        return [e for e in events(core, namespace, "web") if "no pool admits namespace" in e[2]]

    wait_for("the unlabelled namespace to be refused, saying why", refused)
    assert ingress(core, namespace, "web") == []
    code, findings = lbctl_check(apiserver.kubeconfig, namespace)
    assert code == 1 and [(f["kind"], f["subject"]) for f in findings] == [
        ("Pending", f"{namespace}/web")
    ]
    assert "no pool admits namespace" in findings[0]["message"]

    label_namespace(core, namespace, namespace)
    assert wait_for("an address once labelled", lambda: ingress(core, namespace, "web")) == [
        "198.51.100.210"
    ]
    # No speaker runs here: an address nobody announces is all check may find.
    assert lbctl_check(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == (0, [])

    # Another label change that still matches moves nothing.
    core.patch_namespace(namespace, {"metadata": {"labels": {"lbctl-test/other": "x"}}})
    version = core.read_namespaced_service("web", namespace).metadata.resource_version
    core.create_namespaced_service(namespace, service("marker"))
    wait_for("the marker's address", lambda: ingress(core, namespace, "marker"))
    web = core.read_namespaced_service("web", namespace)
    assert web.metadata.resource_version == version

    # The pool no longer admits the namespace: as for a namespace taken out of `namespaces`,
    # the address goes (a pool's admission is a rule on every address it gives, not only new).
    label_namespace(core, namespace, None)
    wait_for("the address to be cleared", lambda: ingress(core, namespace, "web") == [])
    wait_for(
        "a ClearAssignment event naming the rule",
        lambda: [
            e
            for e in events(core, namespace, "web")
            if e[1] == "ClearAssignment" and "admits only namespaces matching" in e[2]
        ],
    )
