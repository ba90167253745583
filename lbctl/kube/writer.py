"""Apply ``reconcile.Writes`` to a Service, and record Events (I/O).

Every write first asks ``may_write`` (the leader check), so a controller that lost its lease
writes nothing. Metadata and status writes carry the resourceVersion they were decided on: a
stale decision fails with 409 and is retried on fresh data instead of overwriting someone's
change. That also fences a write that passed the leader check just before its process paused
(a long GC pause, a frozen VM) and goes out after another replica took over: it cannot
overwrite what the new leader wrote since.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import objects, reconcile, repeats

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
        self.repeats = repeats.Repeats()

    def _guard(self, kind: str) -> None:
        if not self._may_write():
            raise NotLeader("not the leader: write skipped")
        self._on_write(kind)

    def apply(self, obj: objects.Obj, writes: reconcile.Writes) -> str | None:
        """At most one metadata patch and one status patch; the resourceVersion they left.

        Adding: finalizer (with the pool annotation) before the status, so an address is never
        written without the finalizer that cleans it up. Removing: status first, finalizer last.
        """
        meta = objects.meta_of(obj)
        name, ns = meta["name"], meta["namespace"]
        version = meta.get("resourceVersion")
        finalizers = objects.finalizers(obj)
        patch: dict[str, object] = {}
        if writes.finalizer is True and objects.FINALIZER not in finalizers:
            patch["finalizers"] = [*finalizers, objects.FINALIZER]
        elif writes.finalizer is False and objects.FINALIZER in finalizers:
            # Merge patch replaces the list; resourceVersion protects others' finalizers.
            patch["finalizers"] = [f for f in finalizers if f != objects.FINALIZER] or None
        if writes.pool_annotation is not reconcile.KEEP:
            patch["annotations"] = {objects.ANN_ALLOCATED_FROM: writes.pool_annotation}
        removing = writes.finalizer is False
        if patch and not removing:
            self._guard("metadata")
            version = self._patch_meta(name, ns, patch, version)
        if writes.ingress is not None:
            self._guard("status")
            patched = self._core.patch_namespaced_service_status(
                name,
                ns,
                {
                    "metadata": {"resourceVersion": version},
                    "status": {"loadBalancer": {"ingress": writes.ingress}},
                },
            )
            version = patched.metadata.resource_version
        if patch and removing:
            self._guard("metadata")
            self._patch_meta(name, ns, patch, version)
        for event in writes.events:
            self.event(obj, event)
        return str(version) if version is not None else None

    def fence(self, obj: objects.Obj, term: str) -> dict[str, object] | None:
        """Mark a Service with our leader term, changing its resourceVersion: a write the
        previous leader decided before it lost the lease (and sends late, after a pause) now
        fails with 409 instead of landing. Returns the Service as it is now (None if gone)."""
        meta = objects.meta_of(obj)
        self._guard("fence")
        try:
            patched = self._core.patch_namespaced_service(
                meta["name"],
                meta["namespace"],
                {"metadata": {"annotations": {objects.ANN_FENCE: term}}},
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, object] = self._core.api_client.sanitize_for_serialization(patched)
        return result

    def _patch_meta(self, name: str, ns: str, patch: dict[str, object], version: str | None) -> str:
        patched = self._core.patch_namespaced_service(
            name, ns, {"metadata": {**patch, "resourceVersion": version}}
        )
        return str(patched.metadata.resource_version)

    def event(self, obj: objects.Obj, event: reconcile.Event, kind: str = "Service") -> None:
        """Record ``event`` on ``obj``; the same Event again counts up the one already created
        (``count``, ``lastTimestamp``), as Kubernetes' recorder does. Best effort."""
        if not self._may_write():
            return
        meta = objects.meta_of(obj)
        message = event.message[:1000]
        key = repeats.EventKey(
            self.component,
            self.host,
            kind,
            str(meta["namespace"]),
            str(meta["name"]),
            str(meta.get("uid") or ""),
            event.type.value,
            event.reason,
            message,
        )
        now = datetime.datetime.now(datetime.UTC)
        try:
            again = self.repeats.next(key)
            if again is not None:
                try:
                    self._on_write("event")
                    self._core.patch_namespaced_event(
                        again.name,
                        key.namespace,
                        {"count": again.count, "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
                    )
                    return
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    self.repeats.forget(key)  # expired (the server's event TTL): a new one
            name = f"{meta['name']}.{secrets.token_hex(8)}"
            self._on_write("event")
            self._core.create_namespaced_event(key.namespace, self._new_event(meta, key, name, now))
            self.repeats.created(key, name)
        except Exception as exc:  # events are best effort: never block the real work
            log.warning("event %s on %s/%s: %s", event.reason, key.namespace, key.name, exc)

    def _new_event(
        self,
        meta: objects.ObjectMeta,
        key: repeats.EventKey,
        name: str,
        now: datetime.datetime,
    ) -> client.CoreV1Event:
        return client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=name, namespace=key.namespace),
            involved_object=client.V1ObjectReference(
                kind=key.kind,
                api_version="v1",
                name=key.name,
                namespace=key.namespace,
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=key.reason,
            message=key.message,
            type=key.type,
            source=client.V1EventSource(component=self.component, host=self.host or None),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            reporting_component=self.component,
            reporting_instance=self.host or self.component,
        )
