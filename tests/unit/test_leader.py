"""Leader election timing against a fake Lease API and a fake clock: when may a lease be taken?"""

from __future__ import annotations

import copy
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl.kube.leader import LeaderElector, LeaseTimings
from lbctl.leases import Clocks


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """One Lease with optimistic concurrency. ``during_read`` runs (once) inside the next read,
    before it answers: what happens meanwhile to a slow request or a frozen process."""

    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0
        self.during_read: Callable[[], object] | None = None

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        meanwhile, self.during_read = self.during_read, None
        if meanwhile:
            meanwhile()
        if self.lease is None:
            raise ApiException(status=404)
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        return self._store(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease
    ) -> client.V1Lease:
        if self.lease and body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409)
        return self._store(body)

    def _store(self, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease.metadata.resource_version = str(self.version)
        return copy.deepcopy(self.lease)


def elector(identity: str, leases: FakeLeases, clock: Clock) -> LeaderElector:
    e = LeaderElector(
        leases,
        namespace="ns",
        name="lease",
        identity=identity,
        timings=LeaseTimings(lease_duration=2, renew_deadline=1.5, retry_period=0.25),
        clocks=Clocks(monotonic=clock),
    )
    return e


def test_a_live_lease_is_not_taken_before_it_stood_still_for_its_duration() -> None:
    clock = Clock()
    leases = FakeLeases()
    a, b = elector("a", leases, clock), elector("b", leases, clock)
    assert a.try_acquire_or_renew() and a.is_leader()
    clock.now = 1.0
    assert not b.try_acquire_or_renew()  # b first sees a's record now
    clock.now = 2.9
    assert not b.try_acquire_or_renew()
    clock.now = 3.1  # unchanged for 2 s as b saw it; a stopped leading at 1.5
    assert not a.is_leader()
    assert b.try_acquire_or_renew() and b.is_leader()


def test_a_record_first_seen_after_a_slow_read_counts_from_when_it_was_seen() -> None:
    """A candidate frozen (or slowed) between starting an attempt and the Lease's answer must
    not date what it reads back to the start: the record may have been written meanwhile."""
    clock = Clock()
    leases = FakeLeases()
    a, b = elector("a", leases, clock), elector("b", leases, clock)
    assert a.try_acquire_or_renew()
    clock.now = 1.0

    def a_renews_at_3() -> None:
        clock.now = 3.0
        assert a.try_acquire_or_renew()

    leases.during_read = a_renews_at_3  # b's read starts at 1.0 and answers at 3.0
    assert not b.try_acquire_or_renew()
    clock.now = 3.25  # b's next retry: a renewed 0.25 s ago and leads until 4.5
    assert a.is_leader()
    assert not b.try_acquire_or_renew(), "two leaders: b took a lease renewed 0.25 s before"
