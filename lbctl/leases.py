"""Leases observed and read: who is live, by whose clock (pure: time is an argument).

Two ways to judge a Lease (coordination.k8s.io/v1), for two kinds of reader:

- A running component (the controller's leader election, every speaker's peer liveness) uses an
  ``Observer``: a Lease counts as live while its record has changed within its duration, measured
  on *this* process's monotonic clock from when the change was seen. No wall-clock comparison
  between machines, so clock skew can neither make two leaders nor kill a live speaker.
- A one-shot reader (``lbctl status``/``check``) has only one reading and no history: it
  compares ``renewTime + leaseDurationSeconds`` with a wall clock it is given (the API server's
  ``Date``), in ``lease_states``.

The speaker Leases' names, labels and annotations, and how they are read, are here too; the
writes are in ``kube/speakers.py`` and ``kube/leader.py``.
"""

from __future__ import annotations

import datetime
import enum
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from lbctl import ipam, objects
from lbctl.objects import Obj

PREFIX = "lbctl-speaker-"
LABEL = "app.kubernetes.io/component"
LABEL_VALUE = "speaker-lease"
SELECTOR = f"{LABEL}={LABEL_VALUE}"  # every speaker Lease, as a label selector
JOINING = "lbctl.io/joining"  # annotation on a starting speaker's Lease
# The live speakers this speaker leaves out because of the LAN (liveness.PeerWatch.out):
# comma-separated node names, itself included while it yields. Written only when it changes.
UNHEARD = "lbctl.io/unheard"
# The addresses this speaker does not announce because another host on the LAN uses them:
# comma-separated ``address=MAC``. Written only when it changes.
CONFLICTS = "lbctl.io/conflicts"


class LeaseState(enum.Enum):
    LIVE = "live"  # a candidate: joined and renewing
    STARTING = "starting"  # renewing, but not ready yet: no candidate
    UNHEARD = "unheard"  # renewing, but a live speaker does not hear it on the LAN
    EXPIRED = "expired"


def lease_name(node: str) -> str:
    return PREFIX + node


def wall_now() -> datetime.datetime:
    """The wall clock, UTC: what a Lease's ``renewTime``/``acquireTime`` is written with."""
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Clocks:
    """The two clocks a Lease holder reads, injected so tests can step them.

    ``monotonic``: seconds, for expiry as observed locally (skew between machines never
    matters); ``wall``: UTC, only for the ``renewTime``/``acquireTime`` it writes."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime.datetime] = wall_now


SYSTEM_CLOCKS = Clocks()


def parse_time(value: object) -> datetime.datetime | None:
    """A Lease's MicroTime (RFC 3339, ``Z`` or an offset); None when it is not one."""
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class _Seen:
    record: Hashable  # what identifies one write of the Lease (holder, renewTime, ...)
    at: float  # monotonic seconds when this record was first seen
    duration: float  # seconds it stays live unchanged (leaseDurationSeconds)


class Observer(Generic[K]):
    """Lease records by key, live while changed within their duration on the observer's clock.

    ``now`` is monotonic seconds, given by the caller: the observer holds no clock. A record
    that arrives again unchanged (a relist, a resync) does not count as a renewal.
    """

    def __init__(self) -> None:
        self._seen: dict[K, _Seen] = {}

    def see(self, key: K, record: Hashable, duration: float, now: float) -> None:
        old = self._seen.get(key)
        if old is None or old.record != record:
            self._seen[key] = _Seen(record, now, duration)

    def forget(self, key: K) -> None:
        self._seen.pop(key, None)

    def live(self, key: K, now: float) -> bool:
        seen = self._seen.get(key)
        return seen is not None and now - seen.at < seen.duration

    def renewing(self, now: float) -> set[K]:
        return {key for key in self._seen if self.live(key, now)}

    def next_expiry(self, now: float) -> float | None:
        """Seconds until the next live record would expire without changing."""
        left = [s.at + s.duration - now for s in self._seen.values() if now - s.at < s.duration]
        return min(left) if left else None


def speaker_node(obj: Obj) -> str | None:
    """The node of a speaker Lease (``lbctl-speaker-<node>``); None for any other Lease."""
    name = str(objects.meta_of(obj).get("name", ""))
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


def starting(obj: Obj) -> bool:
    """Whether a speaker Lease says its speaker is still starting (``JOINING``)."""
    return JOINING in objects.annotations_of(obj)


def renewed(obj: Obj) -> datetime.datetime | None:
    return parse_time(objects.lease_spec(obj).get("renewTime"))


def live_at(obj: Obj, now: datetime.datetime) -> bool:
    """Whether a Lease renewed in time is still within its duration at wall-clock ``now``."""
    at, duration = renewed(obj), objects.lease_spec(obj).get("leaseDurationSeconds")
    try:
        return at is not None and at + datetime.timedelta(seconds=float(str(duration))) > now
    except (TypeError, ValueError):
        return False


def conflicts(
    lease_objs: Iterable[Obj], now: datetime.datetime | None = None
) -> dict[str, tuple[str, str]]:
    """Address → (MAC of the other host, node that saw it), from the speakers' ``CONFLICTS``
    annotations; malformed entries are skipped. With ``now``, a Lease expired by then counts
    no more (a dead speaker's word would keep an address out of use for ever)."""
    out = {}
    for obj in lease_objs:
        node = speaker_node(obj)
        if node is None:
            continue
        if now is not None and not live_at(obj, now):
            continue
        for entry in str(objects.annotations_of(obj).get(CONFLICTS) or "").split(","):
            ip, sep, mac = entry.partition("=")
            if sep and ip and mac:
                out[ip] = (mac, node)
    return out


def by_address(found: Mapping[str, tuple[str, str]]) -> dict[ipam.IP, str]:
    """``conflicts``' answer as the allocator takes it: address → who uses it, in words
    (``MAC 02:..., seen by node n1``); entries that are no address are skipped."""
    out: dict[ipam.IP, str] = {}
    for text, (mac, node) in found.items():
        try:
            ip = ipam.parse_ip(text)
        except ValueError:
            continue
        out[ip] = f"MAC {mac}, seen by node {node}"
    return out


def lease_states(lease_objs: Iterable[Obj], now: datetime.datetime) -> dict[str, LeaseState]:
    """Every speaker Lease's node → its state, judged from one reading by the wall clock ``now``
    (for one-shot readers such as ``lbctl status``; the speakers themselves use ``Liveness``)."""
    states: dict[str, LeaseState] = {}
    unheard: set[str] = set()
    for obj in lease_objs:
        node = speaker_node(obj)
        if node is None:
            continue
        state = LeaseState.EXPIRED
        if live_at(obj, now):
            state = LeaseState.STARTING if starting(obj) else LeaseState.LIVE
        states[node] = state
        if state is LeaseState.LIVE:
            said = objects.annotations_of(obj).get(UNHEARD)
            unheard |= {n for n in str(said or "").split(",") if n}
    # What a live speaker's LAN view leaves out, as its election does (liveness.PeerWatch).
    return {
        node: LeaseState.UNHEARD if state is LeaseState.LIVE and node in unheard else state
        for node, state in states.items()
    }


class Liveness:
    """Which speakers are live, from the speaker Leases an informer delivers (thread-safe).

    ``monotonic`` is the clock the observations are timed with (injected in tests)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._mono = monotonic
        self._lock = threading.Lock()
        self._leases: Observer[str] = Observer()
        self._starting: set[str] = set()  # nodes whose Lease says they are still starting

    def observe(self, kind: str, obj: Obj) -> None:
        node = speaker_node(obj)
        if node is None:
            return
        with self._lock:
            if kind == "DELETED":
                self._leases.forget(node)
                self._starting.discard(node)
                return
            if starting(obj):
                self._starting.add(node)
            else:
                self._starting.discard(node)
            spec = objects.lease_spec(obj)
            record = (spec.get("holderIdentity"), spec.get("renewTime"))
            duration = float(spec.get("leaseDurationSeconds") or 0)
            self._leases.see(node, record, duration, self._mono())

    def live(self) -> set[str]:
        """The candidates: speakers renewing their Lease that have joined."""
        with self._lock:
            return self._leases.renewing(self._mono()) - self._starting

    def starting(self) -> set[str]:
        """Speakers renewing their Lease that are still starting (no candidates yet)."""
        with self._lock:
            return self._leases.renewing(self._mono()) & self._starting

    def next_expiry(self) -> float | None:
        """Seconds until the next live speaker would expire without renewing."""
        with self._lock:
            return self._leases.next_expiry(self._mono())
