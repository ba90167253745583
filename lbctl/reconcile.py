"""From an allocator decision and a Service as it is, the writes and events to make (pure).

Decide, then diff, then write: this module only compares. The controller's writer applies the
result in a safe order (finalizer before status, status before finalizer removal).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lbctl import objects
from lbctl.allocator import Cleared, Decision, Outcome, Reason, ServiceKey


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str  # IPAllocated, AllocationFailed, ClearAssignment, AddressMoved, ...
    message: str


class Keep(enum.Enum):
    """``KEEP``: leave this field as it is (beside None, which removes it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class Writes:
    finalizer: bool | None = None  # True: add, False: remove, None: leave
    ingress: list[objects.Ingress] | None = None  # new status ingress, None: leave
    pool_annotation: str | Keep | None = KEEP  # a value to set, None to remove, KEEP to leave
    events: tuple[Event, ...] = ()

    @property
    def empty(self) -> bool:
        return (
            self.finalizer is None
            and self.ingress is None
            and self.pool_annotation is KEEP
            and not self.events
        )


def for_decision(obj: objects.Obj, decision: Decision) -> Writes:
    """Writes that make a handled Service's object match ``decision``."""
    has_finalizer = objects.FINALIZER in objects.finalizers(obj)
    events = [_cleared_event(c, decision) for c in decision.cleared]
    if decision.outcome is Outcome.UNCHANGED_NO_CONFIG:
        return Writes(events=tuple(events))
    want = [str(ip) for ip in decision.ips]
    ingress = objects.desired_ingress(decision.ips) if objects.ingress_ips(obj) != want else None
    pools = ",".join(dict.fromkeys(decision.pools)) or None
    current_pool = objects.annotations_of(obj).get(objects.ANN_ALLOCATED_FROM)
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


def for_release(obj: objects.Obj, why: str) -> Writes:
    """Writes that undo everything we did to a Service we no longer handle."""
    if objects.FINALIZER not in objects.finalizers(obj):
        return Writes()  # never ours, or already cleaned up
    deleting = objects.deleting(obj)
    had = objects.ingress_ips(obj)
    events = (
        ()
        if deleting or not had
        else (Event(EventType.NORMAL, "ClearAssignment", f"released {', '.join(had)}: {why}"),)
    )
    return Writes(
        finalizer=False,
        ingress=[] if had and not deleting else None,
        pool_annotation=None
        if objects.ANN_ALLOCATED_FROM in objects.annotations_of(obj) and not deleting
        else KEEP,
        events=events,
    )


# --- the work queue's items, and how one sync ended ---


class Input(enum.Enum):
    """A queue item that is not a Service: one of the controller's shared inputs changed.

    Each is handled as a whole (the informer's cache is read again), so one item stands for
    any number of changes to it; Services are queued by their ``ServiceKey``."""

    CONFIG = "config"  # the pool ConfigMap
    NODES = "nodes"  # the Nodes' addresses (never handed out)
    LEASES = "leases"  # the speakers' Leases: the address conflicts they report


Item = ServiceKey | Input


class Failure(enum.Enum):
    """Why a sync raised, as the adapter saw it (the exception's kind)."""

    NOT_LEADER = "not leader"  # leadership was lost between the decision and a write
    API_ERROR = "API error"  # the API server answered with an error status
    OTHER = "other"  # anything else: the API server unreachable, a timeout, a bug


@dataclass(frozen=True)
class Success:
    """Nothing more to do for this item until it changes again."""


@dataclass(frozen=True)
class ReprocessAll:
    """A shared input took effect: every Service is decided again."""


@dataclass(frozen=True)
class RetryAfter:
    """Look at this item again ``seconds`` from now (0: queue it again at once); ``warn``:
    the failure is worth a warning in the log (stale data is not: it is expected)."""

    seconds: float
    warn: bool = False


SyncOutcome = Success | ReprocessAll | RetryAfter

STALE_RETRY = 0.05  # s: the informer brings the fresh object within a moment
ERROR_RETRY = 1.0  # s: the API server may be down or restarting; do not hammer it
STALE_STATUSES = frozenset({404, 409})  # Not Found, Conflict (resourceVersion changed)


def after_failure(failure: Failure, status: int | None = None) -> RetryAfter:
    """When to sync an item again after a failed sync; ``status``: the HTTP status code of an
    ``API_ERROR``.

    Lost leadership is queued again at once (the worker stops when it is not leading, and the
    next leader decides afresh). A 404 or 409 means the decision was made on stale data: the
    informer brings the fresh object (or the deletion) within a moment, so look again soon.
    Any other failure is logged and retried after a second."""
    if failure is Failure.NOT_LEADER:
        return RetryAfter(0.0)
    if failure is Failure.API_ERROR and status in STALE_STATUSES:
        return RetryAfter(STALE_RETRY)
    return RetryAfter(ERROR_RETRY, warn=True)


def after_input(changed: bool) -> Success | ReprocessAll:
    """After a shared input (the config, the Nodes) was read again: every Service is decided
    again when it took effect (a new valid config, other node addresses)."""
    return ReprocessAll() if changed else Success()


def behind(expected: int | None, version: str) -> bool:
    """Whether a cached object (``metadata.resourceVersion`` ``version``) is older than the one
    our own last write to it left (``expected``, None: no write pending).

    A decision on it would take for lost the address we just wrote (its status is not in the
    cache yet) and hand that address to the next Service. resourceVersions are opaque in
    principle; etcd's are increasing integers, and anything else is never skipped."""
    return expected is not None and version.isdigit() and int(version) < expected
