"""Apply ``reconcile.Writes`` to a Service, and record Events (I/O).

Every write first asks ``may_write`` (the leader check), so a controller that lost its lease
writes nothing. Metadata writes carry the resourceVersion they were decided on: a stale
decision fails with 409 and is retried on fresh data instead of overwriting someone's change.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from lbctl import reconcile
from lbctl.kube import services

log = logging.getLogger(__name__)


class NotLeader(RuntimeError):
    """The write was skipped: this replica does not hold the lease."""


class ServiceWriter:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        may_write: Callable[[], bool],
        component: str = "lbctl-controller",
        host: str = "",
        on_write: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._may_write = may_write
        self.component = component
        self.host = host
        self._on_write = on_write

    def _guard(self, kind: str) -> None:
        if not self._may_write():
            raise NotLeader("not the leader: write skipped")
        self._on_write(kind)

    def apply(self, obj: Mapping[str, Any], writes: reconcile.Writes) -> None:
        """Finalizer first, then annotation and status; finalizer removal last."""
        meta = obj["metadata"]
        name, ns = meta["name"], meta["namespace"]
        version = meta.get("resourceVersion")
        finalizers = list(meta.get("finalizers") or [])
        if writes.finalizer is True and services.FINALIZER not in finalizers:
            self._guard("finalizer")
            patched = self._core.patch_namespaced_service(
                name,
                ns,
                {
                    "metadata": {
                        "finalizers": [*finalizers, services.FINALIZER],
                        "resourceVersion": version,
                    }
                },
            )
            version = patched.metadata.resource_version
        if writes.pool_annotation is not reconcile.KEEP:
            self._guard("annotation")
            patched = self._core.patch_namespaced_service(
                name,
                ns,
                {
                    "metadata": {
                        "annotations": {services.ANN_ALLOCATED_FROM: writes.pool_annotation},
                        "resourceVersion": version,
                    }
                },
            )
            version = patched.metadata.resource_version
        if writes.ingress is not None:
            self._guard("status")
            patched = self._core.patch_namespaced_service_status(
                name, ns, {"status": {"loadBalancer": {"ingress": writes.ingress}}}
            )
            version = patched.metadata.resource_version
        if writes.finalizer is False and services.FINALIZER in finalizers:
            self._guard("finalizer")
            rest = [f for f in finalizers if f != services.FINALIZER]
            # JSON merge patch replaces the list; resourceVersion protects others' finalizers.
            self._core.patch_namespaced_service(
                name, ns, {"metadata": {"finalizers": rest or None, "resourceVersion": version}}
            )
        for event in writes.events:
            self.event(obj, event)

    def event(self, obj: Mapping[str, Any], event: reconcile.Event, kind: str = "Service") -> None:
        if not self._may_write():
            return
        self._on_write("event")
        meta = obj["metadata"]
        now = datetime.datetime.now(datetime.UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{meta['name']}.{secrets.token_hex(8)}", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                kind=kind,
                api_version="v1",
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=event.reason,
            message=event.message[:1000],
            type=event.type.value,
            source=client.V1EventSource(component=self.component, host=self.host or None),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            reporting_component=self.component,
            reporting_instance=self.host or self.component,
        )
        try:
            self._core.create_namespaced_event(meta["namespace"], body)
        except Exception as exc:  # events are best effort: never block the real work
            log.warning("event %s on %s/%s: %s", event.reason, meta["namespace"], meta["name"], exc)
