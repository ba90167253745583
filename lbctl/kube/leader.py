"""Lease-based leader election with sub-second timings and an injected clock (I/O).

Expiry is judged by *local observation*: a candidate counts a lease as expired only when its
record has not changed for ``lease_duration`` on the candidate's own monotonic clock, so clock
skew between machines cannot make two leaders. The leader stops calling itself leader
``renew_deadline`` after its last successful renewal, which is shorter than the lease, so by
the time anyone else may take over the old leader has already stopped writing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import leases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTimings:
    lease_duration: int = 15  # seconds, as the Lease object stores it
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "need 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / "
                f"{self.lease_duration}"
            )


class LeaseClient(Protocol):
    """The Lease calls leader election makes: ``CoordinationV1Api``'s, or a fake in tests."""

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease: ...
    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> object: ...
    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease
    ) -> object: ...


class LeaderElector:
    def __init__(
        self,
        lease_client: LeaseClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings = LeaseTimings(),
        clocks: leases.Clocks = leases.SYSTEM_CLOCKS,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        """Compete for Lease ``namespace/name`` as ``identity``, through ``lease_client``
        (``CoordinationV1Api``, or a fake in tests), expiry judged on ``clocks.monotonic``."""
        self.namespace, self.name, self.identity, self.timings = namespace, name, identity, timings
        self._coord, self._clocks = lease_client, clocks
        self._on_change = on_change
        self._renewed_at: float | None = None  # monotonic time of our last successful write
        self._observed: leases.Observer[str] = leases.Observer()  # the Lease, on our clock
        self._leading = False

    def is_leader(self) -> bool:
        at = self._renewed_at
        return at is not None and self._clocks.monotonic() - at < self.timings.renew_deadline

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            log.info(
                "%s: %s lease %s/%s",
                self.identity,
                "acquired" if leading else "lost",
                self.namespace,
                self.name,
            )
            self._on_change(leading)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.try_acquire_or_renew()
            self._set_leading(self.is_leader())
            stop.wait(self.timings.retry_period)
        self._set_leading(False)

    def try_acquire_or_renew(self) -> bool:
        started = self._clocks.monotonic()
        try:
            ok = self._attempt()
        except ApiException as exc:
            ok = False
            if exc.status != 409:  # 409: someone else wrote first; not a failure of ours
                log.warning("%s: lease %s: API error %s", self.identity, self.name, exc.status)
        except Exception as exc:  # the API server may be unreachable
            ok = False
            log.warning("%s: lease %s: %s", self.identity, self.name, exc)
        if ok:
            self._renewed_at = started  # the renewal counts from before the request went out
        return ok

    def _attempt(self) -> bool:
        try:
            lease = self._coord.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._coord.create_namespaced_lease(self.namespace, self._new_lease())
            return True
        # What we read counts from now, when the answer is in: it may have been written at any
        # time since the request went out, however long the request (or a pause) took.
        now = self._clocks.monotonic()
        spec = lease.spec or client.V1LeaseSpec()
        record = (
            spec.holder_identity,
            spec.renew_time,
            spec.lease_duration_seconds,
            lease.metadata.resource_version,
        )
        duration = spec.lease_duration_seconds or self.timings.lease_duration
        self._observed.see(self.name, record, duration, now)
        holder = spec.holder_identity or ""
        if holder and holder != self.identity and self._observed.live(self.name, now):
            self._renewed_at = None
            return False
        stamp = self._clocks.wall()
        if holder != self.identity:
            spec.acquire_time = stamp
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = stamp
        spec.lease_duration_seconds = self.timings.lease_duration
        lease.spec = spec
        # replace carries resourceVersion: a concurrent writer makes this fail with 409.
        self._coord.replace_namespaced_lease(self.name, self.namespace, lease)
        return True

    def _new_lease(self) -> client.V1Lease:
        stamp = self._clocks.wall()
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                acquire_time=stamp,
                renew_time=stamp,
                lease_transitions=0,
                lease_duration_seconds=self.timings.lease_duration,
            ),
        )

    def release(self) -> None:
        """Hand the lease back (on SIGTERM) so a standby takes over without waiting."""
        if not self.is_leader():
            return
        self._renewed_at = None
        try:
            lease = self._coord.read_namespaced_lease(self.name, self.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                lease.spec.lease_duration_seconds = 1
                lease.spec.renew_time = self._clocks.wall()
                self._coord.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception as exc:  # best effort: the lease expires by itself anyway
            log.warning("%s: releasing lease %s: %s", self.identity, self.name, exc)
        self._set_leading(False)
