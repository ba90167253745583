"""From a decision and the Service as it is, only the writes that differ, and the events."""

from __future__ import annotations

import ipaddress
from typing import Any

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
