"""From a decision and the Service as it is, only the writes that differ, and the events."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lbctl import objects, reconcile
from lbctl.allocator import Cleared, Decision, Outcome, Problem, Reason, ServiceKey

KEY = ServiceKey("default/web")
IP = ipaddress.ip_address("198.51.100.1")


def obj(
    ingress: list[str] | None = None,
    finalizer: bool = False,
    pool: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "default"}
    if finalizer:
        meta["finalizers"] = [objects.FINALIZER]
    if pool:
        meta["annotations"] = {objects.ANN_ALLOCATED_FROM: pool}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress or []]}},
    }


def test_a_new_address_adds_finalizer_status_annotation_and_event() -> None:
    w = reconcile.for_decision(obj(), Decision(KEY, Outcome.ALLOCATED, (IP,), ("lan",)))
    assert w.finalizer is True
    assert w.ingress == [{"ip": "198.51.100.1", "ipMode": "VIP"}]
    assert w.pool_annotation == "lan"
    assert [e.reason for e in w.events] == ["IPAllocated"]


def test_a_settled_service_needs_no_write_at_all() -> None:
    w = reconcile.for_decision(
        obj(["198.51.100.1"], finalizer=True, pool="lan"),
        Decision(KEY, Outcome.KEPT, (IP,), ("lan",)),
    )
    assert w.empty


def test_a_server_that_drops_ip_mode_is_not_patched_forever() -> None:
    # 1.20 drops ingress[].ipMode: comparing addresses only keeps this stable.
    w = reconcile.for_decision(
        obj(["198.51.100.1"], finalizer=True, pool="lan"),
        Decision(KEY, Outcome.KEPT, (IP,), ("lan",)),
    )
    assert w.ingress is None


def test_pending_clears_status_and_annotation_but_adds_no_finalizer() -> None:
    d = Decision(
        KEY,
        Outcome.PENDING,
        problem=Problem(Reason.EXHAUSTED, "no free address"),
        cleared=(Cleared(IP, Reason.NOT_IN_ANY_POOL, "198.51.100.1 is in no pool"),),
    )
    w = reconcile.for_decision(obj(["198.51.100.1"], finalizer=True, pool="lan"), d)
    assert w.ingress == [] and w.pool_annotation is None and w.finalizer is None
    assert [(e.type, e.reason) for e in w.events] == [
        (reconcile.EventType.WARNING, "ClearAssignment"),
        (reconcile.EventType.WARNING, "AllocationFailed"),
    ]
    assert "(PoolExhausted)" in w.events[1].message


def test_a_bad_request_that_keeps_its_address_warns_without_writing() -> None:
    d = Decision(KEY, Outcome.KEPT, (IP,), ("lan",), Problem(Reason.BAD_REQUEST, "bad annotation"))
    w = reconcile.for_decision(obj(["198.51.100.1"], finalizer=True, pool="lan"), d)
    assert w.ingress is None and w.finalizer is None
    assert [e.reason for e in w.events] == ["InvalidRequest"]


def test_without_config_nothing_is_written() -> None:
    d = Decision(KEY, Outcome.UNCHANGED_NO_CONFIG, (IP,))
    assert reconcile.for_decision(obj(["198.51.100.1"]), d).empty


def test_release_of_a_service_we_handled_clears_everything_we_wrote() -> None:
    w = reconcile.for_release(obj(["198.51.100.1"], finalizer=True, pool="lan"), "type changed")
    assert (w.finalizer, w.ingress, w.pool_annotation) == (False, [], None)
    assert [e.reason for e in w.events] == ["ClearAssignment"]


def test_release_of_a_deleting_service_only_removes_the_finalizer() -> None:
    w = reconcile.for_release(
        obj(["198.51.100.1"], finalizer=True, pool="lan", deleting=True), "deleted"
    )
    assert w.finalizer is False and w.ingress is None and w.pool_annotation is reconcile.KEEP
    assert w.events == ()


def test_a_service_we_never_touched_is_left_alone() -> None:
    assert reconcile.for_release(obj(["203.0.113.9"]), "not ours").empty


OTHER = ipaddress.ip_address("198.51.100.2")
V6 = ipaddress.ip_address("2001:db8::1")
CONFLICT = "198.51.100.1 is in use by another host on the LAN (MAC 02:00:00:00:99:01, ...)"

# Each row: what the Service lost and what it holds now → the Events, as (reason, words).
LOSS_ROWS = [
    (
        "a Service moved off a conflicted address is told where to and which host took it",
        Cleared(IP, Reason.ADDRESS_CONFLICT, CONFLICT),
        (OTHER,),
        [
            ("AddressMoved", "moved from 198.51.100.1 to 198.51.100.2: " + CONFLICT),
            ("IPAllocated", "assigned 198.51.100.2 from pool lan"),
        ],
    ),
    (
        "a Service with nowhere to move to is told it lost the address",
        Cleared(IP, Reason.ADDRESS_CONFLICT, CONFLICT),
        (),
        [("ClearAssignment", "removed 198.51.100.1: " + CONFLICT)],
    ),
    (
        "a new address of the other family is no move",
        Cleared(IP, Reason.ADDRESS_CONFLICT, CONFLICT),
        (V6,),
        [
            ("ClearAssignment", "removed 198.51.100.1: " + CONFLICT),
            ("IPAllocated", "assigned 2001:db8::1 from pool lan"),
        ],
    ),
    (
        "an address lost for another reason is cleared, not moved",
        Cleared(IP, Reason.NODE_ADDRESS, "198.51.100.1 is an address of node n1"),
        (OTHER,),
        [
            ("ClearAssignment", "removed 198.51.100.1: 198.51.100.1 is an address of node n1"),
            ("IPAllocated", "assigned 198.51.100.2 from pool lan"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("title", "cleared", "now", "events"), LOSS_ROWS, ids=[r[0] for r in LOSS_ROWS]
)
def test_events_for_a_lost_address(
    title: str, cleared: Cleared, now: tuple[Any, ...], events: list[tuple[str, str]]
) -> None:
    outcome = Outcome.ALLOCATED if now else Outcome.PENDING
    problem = None if now else Problem(Reason.EXHAUSTED, "no free IPv4 address in pool(s) lan")
    decision = Decision(KEY, outcome, now, ("lan",) * len(now), problem, (cleared,))
    w = reconcile.for_decision(obj(["198.51.100.1"], finalizer=True, pool="lan"), decision)
    got = [(e.reason, e.message) for e in w.events]
    assert got[: len(events)] == events
