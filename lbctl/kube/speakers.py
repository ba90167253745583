"""Speaker liveness through one Lease per node: renew our own, judge the others' (I/O).

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
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import ipam
from lbctl.kube.informer import Handler, Informer

log = logging.getLogger(__name__)

PREFIX = "lbctl-speaker-"
LABEL = "app.kubernetes.io/component"
LABEL_VALUE = "speaker-lease"
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


def informer(api: client.ApiClient, namespace: str, handler: Handler) -> Informer:
    """The speaker Leases of ``namespace``, listed and watched (speakers: liveness; the
    controller: the conflicts they report)."""
    return Informer(
        "leases",
        client.CoordinationV1Api(api).list_namespaced_lease,
        handler,
        namespace=namespace,
        label_selector=f"{LABEL}={LABEL_VALUE}",
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
        return at is not None and self._mono() - at < self.timings.duration * 0.9

    def joined_for(self) -> float | None:
        """Seconds since our Lease watch brought back our first write as a candidate (since we
        (re)joined, or since our Lease went stale, e.g. an API outage); None before that.

        Counting from the echo, not from the write, means the watch is live and caught up: from
        then on, every live peer's renewal reaches us within one renew period."""
        at = self._joined_at
        return None if at is None else self._mono() - at

    def echo(self, obj: Mapping[str, Any]) -> None:
        """Called with every speaker Lease the watch brings: notes when ours comes back."""
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        wrote = self._joined_write
        if (
            wrote is None
            or self._joined_at is not None
            or meta.get("name") != lease_name(self.node)
        ):
            return
        if _starting(meta):
            return
        try:
            renewed = datetime.datetime.fromisoformat(
                str(spec.get("renewTime")).replace("Z", "+00:00")
            )
        except ValueError:
            return
        if renewed >= wrote:
            self._joined_at = self._mono()

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
        started = self._mono()
        starting = self.starting
        stale = not self.fresh()  # never written, withdrawn, or not renewed in time
        now = _now()
        metadata: dict[str, Any] = {"name": lease_name(self.node), "labels": {LABEL: LABEL_VALUE}}
        if self.pod is not None:  # the current Pod replaces a previous one
            metadata["ownerReferences"] = [self.pod.owner_reference()]
        body: dict[str, Any] = {
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.node,
                "renewTime": now.isoformat(),
                "leaseDurationSeconds": self.timings.duration,
            },
        }
        # Merge patch: null removes the annotation once we have joined.
        patch = {
            **body,
            "metadata": {
                **body["metadata"],
                "annotations": {
                    JOINING: "true" if starting else None,
                    **{key: value or None for key, value in self.published.items()},
                },
            },
        }
        if starting:
            body["metadata"]["annotations"] = {JOINING: "true"}
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
                    lease_name(self.node),
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
            log.warning("renewing lease %s: %s", lease_name(self.node), exc)
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
                lease_name(self.node),
                self.namespace,
                _preload_content=False,
                _request_timeout=self.timings.duration,  # held under the lock: never hang
            )
        except Exception as exc:  # it expires by itself anyway
            log.warning("deleting lease %s: %s", lease_name(self.node), exc)


def _starting(meta: Mapping[str, Any]) -> bool:
    annotations = meta.get("annotations")
    return isinstance(annotations, Mapping) and JOINING in annotations


def conflicts(
    lease_objs: Iterable[Mapping[str, Any]], now: datetime.datetime | None = None
) -> dict[str, tuple[str, str]]:
    """Address → (MAC of the other host, node that saw it), from the speakers' ``CONFLICTS``
    annotations; malformed entries are skipped. With ``now``, a Lease expired by then counts
    no more (a dead speaker's word would keep an address out of use for ever)."""
    out = {}
    for obj in lease_objs:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        annotations = meta.get("annotations") or {}
        if not name.startswith(PREFIX) or not isinstance(annotations, Mapping):
            continue
        if now is not None and not _live(obj.get("spec") or {}, now):
            continue
        for entry in str(annotations.get(CONFLICTS) or "").split(","):
            ip, sep, mac = entry.partition("=")
            if sep and ip and mac:
                out[ip] = (mac, name[len(PREFIX) :])
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


def _live(spec: Mapping[str, Any], now: datetime.datetime) -> bool:
    """Whether a Lease ``spec`` renewed in time is still within its duration at ``now``."""
    renew, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
    try:
        renewed = datetime.datetime.fromisoformat(str(renew).replace("Z", "+00:00"))
        return renewed + datetime.timedelta(seconds=float(str(duration))) > now
    except (TypeError, ValueError):
        return False


def lease_states(
    lease_objs: Iterable[Mapping[str, Any]], now: datetime.datetime
) -> dict[str, LeaseState]:
    """Every speaker Lease's node → its state, judged from one reading by wall clock (for
    one-shot readers such as ``lbctl status``; the speakers themselves use ``Liveness``)."""
    states: dict[str, LeaseState] = {}
    unheard: set[str] = set()
    for obj in lease_objs:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        name = str(meta.get("name", ""))
        if not name.startswith(PREFIX):
            continue
        state = LeaseState.EXPIRED
        if _live(spec, now):
            state = LeaseState.STARTING if _starting(meta) else LeaseState.LIVE
        node = name[len(PREFIX) :]
        states[node] = state
        if state is LeaseState.LIVE:
            annotations = meta.get("annotations") or {}
            said = annotations.get(UNHEARD) if isinstance(annotations, Mapping) else None
            unheard |= {n for n in str(said or "").split(",") if n}
    # What a live speaker's LAN view leaves out, as its election does (liveness.PeerWatch).
    return {
        node: LeaseState.UNHEARD if state is LeaseState.LIVE and node in unheard else state
        for node, state in states.items()
    }


class Liveness:
    """Which speakers are live, from the speaker Leases an informer delivers."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._mono = monotonic
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[tuple[Any, ...], float, float]] = {}  # node → record
        self._starting: set[str] = set()  # nodes whose Lease says they are still starting

    def observe(self, kind: str, obj: dict[str, Any]) -> None:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        name = str(meta.get("name", ""))
        if not name.startswith(PREFIX):
            return
        node = name[len(PREFIX) :]
        with self._lock:
            if kind == "DELETED":
                self._seen.pop(node, None)
                self._starting.discard(node)
                return
            if _starting(meta):
                self._starting.add(node)
            else:
                self._starting.discard(node)
            record = (spec.get("holderIdentity"), spec.get("renewTime"))
            duration = float(spec.get("leaseDurationSeconds") or 0)
            old = self._seen.get(node)
            if old is None or old[0] != record:
                self._seen[node] = (record, self._mono(), duration)

    def _renewing(self) -> set[str]:
        now = self._mono()
        return {node for node, (_, at, duration) in self._seen.items() if now - at < duration}

    def live(self) -> set[str]:
        """The candidates: speakers renewing their Lease that have joined."""
        with self._lock:
            return self._renewing() - self._starting

    def starting(self) -> set[str]:
        """Speakers renewing their Lease that are still starting (no candidates yet)."""
        with self._lock:
            return self._renewing() & self._starting

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
