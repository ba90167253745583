"""The Service writer's requests: every write carries the version it was decided on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kubernetes import client

from lbctl import objects, reconcile
from lbctl.kube.writer import ServiceWriter


class FakeCore:
    """Records each patch and answers with the next resourceVersion."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.version = 10

    def _answer(self, kind: str, body: dict[str, Any]) -> Any:
        self.calls.append((kind, body))
        self.version += 1
        return SimpleNamespace(metadata=SimpleNamespace(resource_version=str(self.version)))

    def patch_namespaced_service(self, name: str, ns: str, body: dict[str, Any]) -> Any:
        return self._answer("metadata", body)

    def patch_namespaced_service_status(self, name: str, ns: str, body: dict[str, Any]) -> Any:
        return self._answer("status", body)


def writer(core: FakeCore) -> ServiceWriter:
    w = ServiceWriter(client.ApiClient(), may_write=lambda: True)
    w._core = core  # the fake API
    return w


def svc(finalizers: list[str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "resourceVersion": "10",
            "finalizers": finalizers,
        }
    }


def test_the_status_write_carries_the_version_it_was_decided_on() -> None:
    """So a write delayed past a takeover (a paused process) cannot overwrite newer data."""
    core = FakeCore()
    ingress = [{"ip": "198.51.100.1"}]
    writer(core).apply(svc([objects.FINALIZER]), reconcile.Writes(ingress=ingress))
    assert core.calls == [
        (
            "status",
            {
                "metadata": {"resourceVersion": "10"},
                "status": {"loadBalancer": {"ingress": ingress}},
            },
        )
    ]


def test_after_adding_the_finalizer_the_status_write_carries_the_new_version() -> None:
    core = FakeCore()
    writer(core).apply(svc([]), reconcile.Writes(finalizer=True, ingress=[{"ip": "198.51.100.1"}]))
    assert [(kind, body["metadata"]["resourceVersion"]) for kind, body in core.calls] == [
        ("metadata", "10"),
        ("status", "11"),
    ]
