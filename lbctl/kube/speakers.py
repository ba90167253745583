"""Speaker liveness through one Lease per node: renew our own (I/O); the others' are judged by
``leases.Liveness`` (pure).

API cost: each speaker renews its own Lease once per renew period and watches the speaker
Leases; with N nodes that is N writes per period in total, whatever the number of Services
or addresses.

A Lease counts as live while its record has changed within its duration, measured on this
speaker's monotonic clock from when the change was seen (no wall-clock comparison between
machines). A speaker that cannot renew its own Lease for its duration stops announcing: by
then the others may have taken its addresses.

A speaker writes its Lease as soon as it runs, annotated ``lbctl.io/joining`` while it is
*starting* (caches not synced, links not known): a starting speaker is no candidate for any
address, but the others can see that it is coming. Once ready it removes the annotation (it
``join``s) and is a candidate for everyone at once; it announces only when the start-up rule
(``election.settling``) allows: one renew period after joining, and no peer still starting.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import leases, objects
from lbctl.kube.informer import Handler, Informer

log = logging.getLogger(__name__)


def informer(api: client.ApiClient, namespace: str, handler: Handler) -> Informer:
    """The speaker Leases of ``namespace``, listed and watched (speakers: liveness; the
    controller: the conflicts they report)."""
    list_leases = client.CoordinationV1Api(api).list_namespaced_lease
    return Informer(
        "leases", list_leases, handler, namespace=namespace, label_selector=leases.SELECTOR
    )


@dataclass(frozen=True)
class PodRef:
    """The Pod a speaker runs in (downward API): its Lease's owner, so that the Lease goes with
    the Pod even when the speaker cannot delete it (an uninstall removes its RBAC first)."""

    name: str
    uid: str

    def owner_reference(self) -> dict[str, str]:
        return {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}


@dataclass(frozen=True)
class LeaseTimings:
    duration: int = 4  # seconds (the Lease stores whole seconds)
    renew: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.renew < self.duration:
            raise ValueError(
                f"need 0 < renew period < lease duration, got {self.renew} / {self.duration}"
            )


class LeaseClient(Protocol):
    """The Lease calls a speaker makes: ``CoordinationV1Api``'s, or a fake in tests."""

    def patch_namespaced_lease(
        self, name: str, namespace: str, body: Mapping[str, object], **kw: object
    ) -> object: ...
    def create_namespaced_lease(
        self, namespace: str, body: Mapping[str, object], **kw: object
    ) -> object: ...
    def delete_namespaced_lease(self, name: str, namespace: str, **kw: object) -> object: ...


class OwnLease:
    """Creates and renews ``lbctl-speaker-<node>``; ``fresh()`` says whether we may announce."""

    def __init__(
        self,
        lease_client: LeaseClient,
        *,
        namespace: str,
        node: str,
        timings: LeaseTimings,
        clocks: leases.Clocks = leases.SYSTEM_CLOCKS,
        on_failure: Callable[[], None] = lambda: None,
        pod: PodRef | None = None,
    ) -> None:
        """Hold ``namespace/lbctl-speaker-<node>`` through ``lease_client``
        (``CoordinationV1Api``, or a fake in tests)."""
        self._coord = lease_client
        self._clocks = clocks
        self.namespace, self.node, self.timings = namespace, node, timings
        self.pod = pod
        self._on_failure = on_failure
        self._renewed_at: float | None = None
        # The start-up clock: our first write as a candidate since we (re)joined or our Lease
        # went stale (its renewTime), and when our Lease watch brought that write back to us.
        self._joined_write: datetime.datetime | None = None
        self._joined_at: float | None = None
        self.released = False
        self.withdrawn = False  # out of the election for now (no link to announce on)
        self.starting = False  # renewed with the joining annotation until ``join``
        self.published: dict[str, str] = {}  # our annotations (UNHEARD, CONFLICTS) to write
        self._lock = threading.Lock()  # a renewal never recreates a Lease just withdrawn
        self._publish = threading.Event()  # write now, not at the next renewal

    def fresh(self) -> bool:
        at = self._renewed_at
        # Stop a little before the others can consider us dead (they wait a full duration
        # from when they saw our renewal, which is after we sent it).
        return at is not None and self._clocks.monotonic() - at < self.timings.duration * 0.9

    def joined_for(self) -> float | None:
        """Seconds since our Lease watch brought back our first write as a candidate (since we
        (re)joined, or since our Lease went stale, e.g. an API outage); None before that.

        Counting from the echo, not from the write, means the watch is live and caught up: from
        then on, every live peer's renewal reaches us within one renew period."""
        at = self._joined_at
        return None if at is None else self._clocks.monotonic() - at

    def echo(self, obj: objects.Obj) -> None:
        """Called with every speaker Lease the watch brings: notes when ours comes back."""
        wrote = self._joined_write
        if wrote is None or self._joined_at is not None or leases.speaker_node(obj) != self.node:
            return
        if leases.starting(obj):
            return
        renewed = leases.renewed(obj)
        if renewed is not None and renewed >= wrote:
            self._joined_at = self._clocks.monotonic()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.released:
            self._publish.clear()
            if not self.withdrawn:
                self.renew()
            self._publish.wait(self.timings.renew)

    def publish(self, key: str, value: str) -> None:
        """Set annotation ``key`` of our Lease ("" removes it): written at once, from the
        renewing thread (never the caller's), when it changed, so ``lbctl status`` agrees.
        ``UNHEARD``: the live speakers we leave out because of the LAN; ``CONFLICTS``."""
        if self.published.get(key, "") != value:
            self.published = {**self.published, key: value}
            self._publish.set()

    def renew(self) -> bool:
        with self._lock:
            if self.released or self.withdrawn:
                return False
            return self._renew()

    def _renew(self) -> bool:
        started = self._clocks.monotonic()
        starting = self.starting
        stale = not self.fresh()  # never written, withdrawn, or not renewed in time
        now = self._clocks.wall()
        metadata: dict[str, object] = {
            "name": leases.lease_name(self.node),
            "labels": {leases.LABEL: leases.LABEL_VALUE},
        }
        if self.pod is not None:  # the current Pod replaces a previous one
            metadata["ownerReferences"] = [self.pod.owner_reference()]
        spec: objects.LeaseSpec = {
            "holderIdentity": self.node,
            "renewTime": now.isoformat(),
            "leaseDurationSeconds": self.timings.duration,
        }
        # Merge patch: null removes the annotation once we have joined.
        annotations: dict[str, str | None] = {
            leases.JOINING: "true" if starting else None,
            **{key: value or None for key, value in self.published.items()},
        }
        patch = {"metadata": {**metadata, "annotations": annotations}, "spec": spec}
        if starting:
            metadata["annotations"] = {leases.JOINING: "true"}
        body = {"metadata": metadata, "spec": spec}
        # A renewal stuck in TCP retransmits must not outlive the lease it renews.
        timeout = max(0.2, min(self.timings.renew, self.timings.duration / 2))
        before = self._joined_write, self._joined_at
        if not starting and (stale or self._joined_write is None):
            # A new start-up: peers may have come, gone or expired meanwhile in our view. Set
            # before the write: its echo may come back through the watch before we return.
            self._joined_write, self._joined_at = now, None
        try:
            try:
                # A JSON merge patch: ownerReferences is replaced, never merged by uid.
                self._coord.patch_namespaced_lease(
                    leases.lease_name(self.node),
                    self.namespace,
                    patch,
                    _request_timeout=timeout,
                    _content_type="application/merge-patch+json",
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._coord.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
        except Exception as exc:  # the API server may be unreachable: we stop in time
            log.warning("renewing lease %s: %s", leases.lease_name(self.node), exc)
            self._joined_write, self._joined_at = before
            self._on_failure()
            return False
        self._renewed_at = started
        return True

    def join(self) -> None:
        """Ready (caches synced, a link to announce on): become a candidate, from now on.

        Also ends a withdrawal; the start-up rule counts from this moment either way."""
        with self._lock:
            if self.released or not (self.starting or self.withdrawn):
                return
            self.starting = self.withdrawn = False
            self._joined_write = self._joined_at = None
            self._renew()

    def withdraw(self) -> None:
        """Leave the election until ``rejoin``: delete our Lease so others take over now."""
        with self._lock:
            if self.withdrawn:
                return
            self.withdrawn = True
            self._delete()

    def release(self) -> None:
        """Delete our Lease so the others take over at once (graceful shutdown, drain)."""
        with self._lock:
            self.released = True
            self._delete()

    def _delete(self) -> None:
        self._renewed_at = self._joined_at = self._joined_write = None
        try:
            self._coord.delete_namespaced_lease(
                leases.lease_name(self.node),
                self.namespace,
                _preload_content=False,
                _request_timeout=self.timings.duration,  # held under the lock: never hang
            )
        except Exception as exc:  # it expires by itself anyway
            log.warning("deleting lease %s: %s", leases.lease_name(self.node), exc)
