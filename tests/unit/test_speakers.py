"""Speaker Leases: starting, joining, withdrawing; what peers and one-shot readers make of them."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from kubernetes.client.exceptions import ApiException

from lbctl import leases
from lbctl.kube.speakers import LeaseTimings, OwnLease
from lbctl.leases import LeaseState, Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeCoord:
    """One Lease at most; records each request's body."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def patch_namespaced_lease(self, name: str, ns: str, body: dict[str, Any], **_: Any) -> None:
        self.calls.append(("patch", body))
        if self.lease is None:
            raise ApiException(status=404)
        ann = {**(self.lease["metadata"].get("annotations") or {})}
        for k, v in (body["metadata"].get("annotations") or {}).items():
            if v is None:
                ann.pop(k, None)
            else:
                ann[k] = v
        self.lease = {**body, "metadata": {**body["metadata"], "annotations": ann}}

    def create_namespaced_lease(self, ns: str, body: dict[str, Any], **_: Any) -> None:
        self.calls.append(("create", body))
        assert None not in (body["metadata"].get("annotations") or {}).values()
        self.lease = body

    def delete_namespaced_lease(self, name: str, ns: str, **_: Any) -> None:
        self.calls.append(("delete", {}))
        self.lease = None


def own(clock: Clock) -> tuple[OwnLease, FakeCoord]:
    fake = FakeCoord()
    lease = OwnLease(
        fake,
        namespace="ns",
        node="n1",
        timings=LeaseTimings(4, 1),
        clocks=leases.Clocks(monotonic=clock),
    )
    return lease, fake


def annotations(fake: FakeCoord) -> dict[str, str]:
    assert fake.lease is not None
    return dict(fake.lease["metadata"].get("annotations") or {})


def test_a_starting_speaker_writes_its_lease_at_once_marked_joining_and_has_not_joined() -> None:
    clock = Clock()
    lease, fake = own(clock)
    lease.starting = True
    assert lease.renew()
    assert [c for c, _ in fake.calls] == ["patch", "create"]
    assert annotations(fake) == {leases.JOINING: "true"}
    assert lease.fresh() and lease.joined_for() is None


def test_joining_removes_the_mark_and_the_start_up_clock_starts_when_the_watch_echoes_it() -> None:
    clock = Clock()
    lease, fake = own(clock)
    lease.starting = True
    lease.renew()
    starting_copy = dict(fake.lease or {})
    clock.now += 3
    lease.join()
    assert annotations(fake) == {}
    lease.echo(starting_copy)  # the watch still brings the old, starting Lease: not yet
    assert lease.joined_for() is None
    clock.now += 0.2
    assert fake.lease is not None
    lease.echo(fake.lease)  # our joined write, back through the watch: the clock starts
    clock.now += 0.5
    assert lease.joined_for() == 0.5
    lease.renew()  # renewals keep the start
    lease.echo(fake.lease)
    assert lease.joined_for() == 0.5


def test_a_lease_that_went_stale_starts_the_clock_again() -> None:
    """An API outage: peers may have gone or come meanwhile, as at a start."""
    clock = Clock()
    lease, fake = own(clock)
    lease.starting = True
    lease.join()
    assert fake.lease is not None
    lease.echo(fake.lease)
    assert lease.joined_for() == 0
    clock.now += 10  # no renewal got through for longer than the lease
    assert not lease.fresh()
    lease.renew()
    assert lease.joined_for() is None
    lease.echo(fake.lease)
    assert lease.joined_for() == 0


def test_withdrawing_deletes_the_lease_and_rejoining_starts_the_clock_again() -> None:
    clock = Clock()
    lease, fake = own(clock)
    lease.join()  # not starting, not withdrawn: nothing to do
    assert fake.calls == []
    lease.starting = True
    lease.join()
    assert fake.lease is not None
    lease.echo(fake.lease)
    lease.withdraw()
    assert fake.lease is None and lease.joined_for() is None and not lease.fresh()
    clock.now += 10
    lease.join()
    assert fake.lease is not None and lease.joined_for() is None
    lease.echo(fake.lease)
    assert lease.joined_for() == 0


def lease_obj(
    node: str, *, joining: bool = False, renew: str = "2026-01-01T00:00:00Z"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": leases.lease_name(node)}
    if joining:
        meta["annotations"] = {leases.JOINING: "true"}
    return {
        "metadata": meta,
        "spec": {"holderIdentity": node, "renewTime": renew, "leaseDurationSeconds": 4},
    }


def test_peers_count_a_starting_speaker_as_coming_not_as_a_candidate() -> None:
    clock = Clock()
    seen = Liveness(clock)
    seen.observe("ADDED", lease_obj("n1"))
    seen.observe("ADDED", lease_obj("n2", joining=True))
    assert (seen.live(), seen.starting()) == ({"n1"}, {"n2"})
    seen.observe("MODIFIED", lease_obj("n2", renew="2026-01-01T00:00:01Z"))  # joined
    assert (seen.live(), seen.starting()) == ({"n1", "n2"}, set())
    clock.now += 5  # nobody renewed for longer than the duration
    assert (seen.live(), seen.starting()) == (set(), set())


def test_a_starting_speaker_that_stops_renewing_is_neither() -> None:
    clock = Clock()
    seen = Liveness(clock)
    seen.observe("ADDED", lease_obj("n2", joining=True))
    seen.observe("DELETED", lease_obj("n2", joining=True))
    assert (seen.live(), seen.starting()) == (set(), set())


def test_one_shot_readers_tell_live_starting_and_expired_apart() -> None:
    now = datetime.datetime(2026, 1, 1, 0, 0, 2, tzinfo=datetime.UTC)
    states = leases.lease_states(
        [
            lease_obj("n1"),
            lease_obj("n2", joining=True),
            lease_obj("n3", renew="2025-12-31T23:59:00Z"),
            {"metadata": {"name": "lbctl-controller"}, "spec": {}},
        ],
        now,
    )
    assert states == {"n1": LeaseState.LIVE, "n2": LeaseState.STARTING, "n3": LeaseState.EXPIRED}


def _lease(node: str, *, unheard: str | None = None, renewed: str = "2026-11-30T12:00:00Z"):
    annotations = {"lbctl.io/unheard": unheard} if unheard is not None else {}
    return {
        "metadata": {"name": f"lbctl-speaker-{node}", "annotations": annotations},
        "spec": {"holderIdentity": node, "renewTime": renewed, "leaseDurationSeconds": 40},
    }


def test_lease_states_leave_out_whom_a_live_speaker_does_not_hear_on_the_lan() -> None:
    import datetime

    from lbctl.leases import LeaseState, lease_states

    now = datetime.datetime(2026, 11, 30, 12, 0, 10, tzinfo=datetime.UTC)
    states = lease_states(
        [
            _lease("n1", unheard="n3"),
            _lease("n2"),
            _lease("n3"),
            _lease("n4", unheard="n2", renewed="2026-11-30T11:00:00Z"),  # expired: no voice
        ],
        now,
    )
    assert states == {
        "n1": LeaseState.LIVE,
        "n2": LeaseState.LIVE,
        "n3": LeaseState.UNHEARD,
        "n4": LeaseState.EXPIRED,
    }


def test_conflicts_are_read_from_the_speakers_annotations_and_junk_is_skipped() -> None:
    from lbctl.leases import conflicts

    leases = [
        {"metadata": {"name": "lbctl-speaker-n1", "annotations": {"lbctl.io/conflicts":
            "198.51.100.7=02:99:00:00:00:01,junk,=x,2001:db8::7=02:aa:00:00:00:02"}}},
        {"metadata": {"name": "lbctl-controller", "annotations": {
            "lbctl.io/conflicts": "198.51.100.8=02:00:00:00:00:08"}}},
        {"metadata": {"name": "lbctl-speaker-n2", "annotations": "not a map"}},
    ]  # fmt: skip
    assert conflicts(leases) == {
        "198.51.100.7": ("02:99:00:00:00:01", "n1"),
        "2001:db8::7": ("02:aa:00:00:00:02", "n1"),
    }


def test_an_expired_speakers_conflict_report_counts_no_more() -> None:
    from lbctl.leases import conflicts

    def lease(node: str, renewed: str, said: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": f"lbctl-speaker-{node}",
                "annotations": {"lbctl.io/conflicts": said},
            },
            "spec": {"renewTime": renewed, "leaseDurationSeconds": 40},
        }

    leases = [
        lease("n1", "2026-01-01T00:00:30Z", "198.51.100.7=02:99:00:00:00:01"),
        lease("n2", "2026-01-01T00:00:00Z", "198.51.100.8=02:99:00:00:00:02"),
    ]
    now = datetime.datetime(2026, 1, 1, 0, 0, 50, tzinfo=datetime.UTC)
    assert conflicts(leases, now) == {"198.51.100.7": ("02:99:00:00:00:01", "n1")}


def test_conflicts_by_address_say_who_in_words_and_skip_what_is_no_address() -> None:
    from lbctl.leases import by_address

    found = {"198.51.100.7": ("02:99:00:00:00:01", "n1"), "junk": ("02:99:00:00:00:02", "n2")}
    assert by_address(found) == {
        ipaddress.ip_address("198.51.100.7"): "MAC 02:99:00:00:00:01, seen by node n1"
    }
