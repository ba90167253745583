"""From an allocator decision and a Service as it is, the writes and events to make (pure).

Decide, then diff, then write: this module only compares. The controller's writer applies the
result in a safe order (finalizer before status, status before finalizer removal).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbctl.allocator import Cleared, Decision, Outcome, Reason
from lbctl.kube import services


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str  # IPAllocated, AllocationFailed, ClearAssignment, AddressMoved, ...
    message: str


KEEP: Any = object()  # "leave this as it is"


@dataclass(frozen=True)
class Writes:
    finalizer: bool | None = None  # True: add, False: remove, None: leave
    ingress: list[dict[str, str]] | None = None  # new status ingress, None: leave
    pool_annotation: Any = KEEP  # a value to set, None to remove, KEEP to leave
    events: tuple[Event, ...] = ()

    @property
    def empty(self) -> bool:
        return (
            self.finalizer is None
            and self.ingress is None
            and self.pool_annotation is KEEP
            and not self.events
        )


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def _finalizers(obj: Mapping[str, Any]) -> list[str]:
    value = _meta(obj).get("finalizers")
    return [str(f) for f in value] if isinstance(value, list) else []


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = _meta(obj).get("annotations")
    return value if isinstance(value, Mapping) else {}


def for_decision(obj: Mapping[str, Any], decision: Decision) -> Writes:
    """Writes that make a handled Service's object match ``decision``."""
    has_finalizer = services.FINALIZER in _finalizers(obj)
    events = [_cleared_event(c, decision) for c in decision.cleared]
    if decision.outcome is Outcome.UNCHANGED_NO_CONFIG:
        return Writes(events=tuple(events))
    want = [str(ip) for ip in decision.ips]
    ingress = services.desired_ingress(decision.ips) if services.ingress_ips(obj) != want else None
    pools = ",".join(dict.fromkeys(decision.pools)) or None
    current_pool = _annotations(obj).get(services.ANN_ALLOCATED_FROM)
    annotation = KEEP if current_pool == pools else pools
    if decision.outcome is Outcome.ALLOCATED:
        events.append(
            Event(EventType.NORMAL, "IPAllocated", f"assigned {', '.join(want)} from pool {pools}")
        )
    if decision.problem is not None:
        if decision.outcome is Outcome.PENDING:
            events.append(
                Event(
                    EventType.WARNING,
                    "AllocationFailed",
                    f"no address: {decision.problem.message} ({decision.problem.reason.value})",
                )
            )
        elif decision.outcome is Outcome.KEPT:
            events.append(
                Event(
                    EventType.WARNING,
                    "InvalidRequest",
                    f"{decision.problem.message}; keeping {', '.join(want)}",
                )
            )
        else:  # PreferDualStack got one family only
            events.append(
                Event(EventType.WARNING, "AllocationIncomplete", decision.problem.message)
            )
    return Writes(
        # Added before the first address is written; a pending Service needs none.
        finalizer=True if want and not has_finalizer else None,
        ingress=ingress,
        pool_annotation=annotation,
        events=tuple(events),
    )


def _cleared_event(cleared: Cleared, decision: Decision) -> Event:
    """``ClearAssignment`` for an address the Service lost; ``AddressMoved`` when another host
    on the LAN took it (``onConflict: reallocate``) and the Service got another of its family."""
    if cleared.reason is Reason.ADDRESS_CONFLICT:
        moved_to = [ip for ip in decision.ips if ip.version == cleared.ip.version]
        if moved_to:
            return Event(
                EventType.WARNING,
                "AddressMoved",
                f"moved from {cleared.ip} to {moved_to[0]}: {cleared.message}",
            )
    return Event(EventType.WARNING, "ClearAssignment", f"removed {cleared.ip}: {cleared.message}")


def for_release(obj: Mapping[str, Any], why: str) -> Writes:
    """Writes that undo everything we did to a Service we no longer handle."""
    if services.FINALIZER not in _finalizers(obj):
        return Writes()  # never ours, or already cleaned up
    deleting = bool(_meta(obj).get("deletionTimestamp"))
    had = services.ingress_ips(obj)
    events = (
        ()
        if deleting or not had
        else (Event(EventType.NORMAL, "ClearAssignment", f"released {', '.join(had)}: {why}"),)
    )
    return Writes(
        finalizer=False,
        ingress=[] if had and not deleting else None,
        pool_annotation=None
        if services.ANN_ALLOCATED_FROM in _annotations(obj) and not deleting
        else KEEP,
        events=events,
    )
