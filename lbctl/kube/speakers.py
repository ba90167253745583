"""Speaker liveness through one Lease per node: renew our own, judge the others' (I/O).

API cost: each speaker renews its own Lease once per renew period and watches the speaker
Leases; with N nodes that is N writes per period in total, whatever the number of Services
or addresses.

A Lease counts as live while its record has changed within its duration, measured on this
speaker's monotonic clock from when the change was seen (no wall-clock comparison between
machines). A speaker that cannot renew its own Lease for its duration stops announcing: by
then the others may have taken its addresses.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

PREFIX = "lbctl-speaker-"
LABEL = "app.kubernetes.io/component"
LABEL_VALUE = "speaker-lease"


def lease_name(node: str) -> str:
    return PREFIX + node


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


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class OwnLease:
    """Creates and renews ``lbctl-speaker-<node>``; ``fresh()`` says whether we may announce."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        node: str,
        timings: LeaseTimings,
        monotonic: Callable[[], float] = time.monotonic,
        on_failure: Callable[[], None] = lambda: None,
        pod: PodRef | None = None,
    ) -> None:
        self._coord = client.CoordinationV1Api(api)
        self.namespace, self.node, self.timings = namespace, node, timings
        self.pod = pod
        self._mono = monotonic
        self._on_failure = on_failure
        self._renewed_at: float | None = None
        self.released = False
        self.withdrawn = False  # out of the election for now (no link to announce on)
        self._lock = threading.Lock()  # a renewal never recreates a Lease just withdrawn

    def fresh(self) -> bool:
        at = self._renewed_at
        # Stop a little before the others can consider us dead (they wait a full duration
        # from when they saw our renewal, which is after we sent it).
        return at is not None and self._mono() - at < self.timings.duration * 0.9

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.released:
            if not self.withdrawn:
                self.renew()
            stop.wait(self.timings.renew)

    def renew(self) -> bool:
        with self._lock:
            if self.released or self.withdrawn:
                return False
            return self._renew()

    def _renew(self) -> bool:
        started = self._mono()
        metadata: dict[str, Any] = {"name": lease_name(self.node), "labels": {LABEL: LABEL_VALUE}}
        if self.pod is not None:  # the current Pod replaces a previous one
            metadata["ownerReferences"] = [self.pod.owner_reference()]
        body = {
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.node,
                "renewTime": _now().isoformat(),
                "leaseDurationSeconds": self.timings.duration,
            },
        }
        # A renewal stuck in TCP retransmits must not outlive the lease it renews.
        timeout = max(0.2, min(self.timings.renew, self.timings.duration / 2))
        try:
            try:
                # A JSON merge patch: ownerReferences is replaced, never merged by uid.
                self._coord.patch_namespaced_lease(
                    lease_name(self.node),
                    self.namespace,
                    body,
                    _request_timeout=timeout,
                    _content_type="application/merge-patch+json",
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._coord.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
        except Exception as exc:  # the API server may be unreachable: we stop in time
            log.warning("renewing lease %s: %s", lease_name(self.node), exc)
            self._on_failure()
            return False
        self._renewed_at = started
        return True

    def withdraw(self) -> None:
        """Leave the election until ``rejoin``: delete our Lease so others take over now."""
        with self._lock:
            if self.withdrawn:
                return
            self.withdrawn = True
            self._delete()

    def rejoin(self) -> None:
        with self._lock:
            if not self.withdrawn or self.released:
                return
            self.withdrawn = False
            self._renew()

    def release(self) -> None:
        """Delete our Lease so the others take over at once (graceful shutdown, drain)."""
        with self._lock:
            self.released = True
            self._delete()

    def _delete(self) -> None:
        self._renewed_at = None
        try:
            self._coord.delete_namespaced_lease(
                lease_name(self.node),
                self.namespace,
                _preload_content=False,
                _request_timeout=self.timings.duration,  # held under the lock: never hang
            )
        except Exception as exc:  # it expires by itself anyway
            log.warning("deleting lease %s: %s", lease_name(self.node), exc)


def lease_states(
    lease_objs: Iterable[Mapping[str, Any]], now: datetime.datetime
) -> dict[str, bool]:
    """Every speaker Lease's node → live or expired, judged from one reading by wall clock (for
    one-shot readers such as ``lbctl status``; the speakers themselves use ``Liveness``)."""
    states = {}
    for obj in lease_objs:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        name = str(meta.get("name", ""))
        if not name.startswith(PREFIX):
            continue
        renew, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
        try:
            renewed = datetime.datetime.fromisoformat(str(renew).replace("Z", "+00:00"))
            live = renewed + datetime.timedelta(seconds=float(str(duration))) > now
        except (TypeError, ValueError):
            live = False
        states[name[len(PREFIX) :]] = live
    return states


class Liveness:
    """Which speakers are live, from the speaker Leases an informer delivers."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._mono = monotonic
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[tuple[Any, ...], float, float]] = {}  # node → record

    def observe(self, kind: str, obj: dict[str, Any]) -> None:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        name = str(meta.get("name", ""))
        if not name.startswith(PREFIX):
            return
        node = name[len(PREFIX) :]
        with self._lock:
            if kind == "DELETED":
                self._seen.pop(node, None)
                return
            record = (spec.get("holderIdentity"), spec.get("renewTime"))
            duration = float(spec.get("leaseDurationSeconds") or 0)
            old = self._seen.get(node)
            if old is None or old[0] != record:
                self._seen[node] = (record, self._mono(), duration)

    def live(self) -> set[str]:
        now = self._mono()
        with self._lock:
            return {node for node, (_, at, duration) in self._seen.items() if now - at < duration}

    def next_expiry(self) -> float | None:
        """Seconds until the next live speaker would expire without renewing."""
        now = self._mono()
        with self._lock:
            left = [
                at + duration - now
                for _, at, duration in self._seen.values()
                if now - at < duration
            ]
        return min(left) if left else None
