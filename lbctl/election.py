"""Which node announces an address: a pure function every speaker computes alike (pure).

Rendezvous (highest-random-weight) hashing: each candidate node scores
``sha256(node + "#" + address)`` and the highest score wins. Every speaker that sees the same
live, eligible nodes picks the same owner with no messages exchanged, and a node joining or
leaving moves only the addresses it wins or held, about 1/N of them.

Eligibility is decided here too, from plain values: a live speaker Lease, a Node object that
is not being deleted, not ``NetworkUnavailable``, not being removed by the cluster autoscaler
nor marked out of service by an administrator (non-graceful node shutdown),
the announce node selector (per pool: ``ownership``), the
``node.kubernetes.io/exclude-from-external-load-balancers``
label, a drain mark, and for ``externalTrafficPolicy: Local`` a ready endpoint on the node.

``Ready=False`` or ``Unknown`` does not make a node ineligible: the node's own speaker Lease
is the faster and more direct proof that it runs and reaches the API, kube-proxy and the
kernel forward without the kubelet, and moving an address breaks its connections (Kubernetes'
service controller stopped using Ready for load-balancer nodes for the same reason, KEP-3458).
For Local policy a NotReady node's endpoints turn not ready, which removes it anyway.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from lbctl import ipam
from lbctl.allocator import ServiceKey
from lbctl.selectors import Selector

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
DRAIN_LABEL = "lbctl.io/drain"
NETWORK_UNAVAILABLE = "NetworkUnavailable"  # the condition a CNI or route controller sets
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"  # non-graceful node shutdown


def score(node: str, ip: ipam.IP) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def owner(ip: ipam.IP, candidates: Iterable[str]) -> str | None:
    """The node that announces ``ip`` among ``candidates``; None if there is none."""
    best: tuple[bytes, str] | None = None
    for node in candidates:
        key = (score(node, ip), node)
        if best is None or key > best:
            best = key
    return best[1] if best else None


class Ineligible(enum.Enum):
    """Why a node may not announce (a closed set, shown by ``lbctl status``)."""

    NO_SPEAKER = "no live speaker"
    STARTING = "its speaker is starting"
    NO_NODE = "no Node object"
    DELETING = "the Node is being deleted"
    NETWORK_UNAVAILABLE = f"condition {NETWORK_UNAVAILABLE} is True"
    TO_BE_DELETED = f"tainted {TO_BE_DELETED_TAINT} (being scaled down)"
    OUT_OF_SERVICE = f"tainted {OUT_OF_SERVICE_TAINT} (shut down)"
    NODE_SELECTOR = "does not match announce.nodeSelector"
    POOL_POLICY = "no pool's announce policy lets it announce"
    EXCLUDED = f"labelled {EXCLUDE_LABEL}"
    DRAINED = f"drained ({DRAIN_LABEL})"
    NO_LOCAL_ENDPOINT = "no ready endpoint of the Service (externalTrafficPolicy: Local)"


@dataclass(frozen=True)
class NodeInfo:
    """What eligibility needs of a Node, read by the adapter (``objects.node_info``)."""

    name: str
    labels: Mapping[str, str]
    exists: bool = True  # False: a live speaker Lease names a node without a Node object
    deleting: bool = False  # metadata.deletionTimestamp is set
    conditions: Mapping[str, str] = field(default_factory=dict)  # type → "True"/"False"/...
    taints: frozenset[str] = frozenset()  # taint keys


def node_ineligible(
    node: NodeInfo,
    *,
    live: Collection[str],
    selector: Selector,
    honour_exclude_label: bool = True,
    starting: Collection[str] = (),
) -> Ineligible | None:
    """Why ``node`` may not announce anything, or None; per-Service rules come after.

    ``live``: the speakers that are candidates; ``starting``: those still starting."""
    if node.name not in live:
        return Ineligible.STARTING if node.name in starting else Ineligible.NO_SPEAKER
    if not node.exists:
        return Ineligible.NO_NODE
    if node.deleting:
        return Ineligible.DELETING
    if node.conditions.get(NETWORK_UNAVAILABLE) == "True":
        return Ineligible.NETWORK_UNAVAILABLE
    if TO_BE_DELETED_TAINT in node.taints:
        return Ineligible.TO_BE_DELETED
    if OUT_OF_SERVICE_TAINT in node.taints:
        return Ineligible.OUT_OF_SERVICE
    if node.labels.get(DRAIN_LABEL, "").lower() in ("true", "1", "yes"):
        return Ineligible.DRAINED
    if honour_exclude_label and EXCLUDE_LABEL in node.labels:
        return Ineligible.EXCLUDED
    if not selector.matches(node.labels):
        return Ineligible.NODE_SELECTOR
    return None


@dataclass(frozen=True)
class AddressNeeds:
    """What one announced address needs from its owner, merged over the Services sharing it."""

    ip: ipam.IP
    services: tuple[ServiceKey, ...]
    # For Local policy: nodes with a ready endpoint of *every* Local Service on the address;
    # None when no Service on it is Local.
    local_nodes: frozenset[str] | None = None


def needs(
    announced: Iterable[tuple[ServiceKey, Iterable[ipam.IP], bool]],
    local_nodes: Mapping[ServiceKey, frozenset[str]],
    in_pool: Callable[[ipam.IP], bool],
) -> list[AddressNeeds]:
    """Merge Services by address: ``(service, addresses, local)`` → one need per address.

    Addresses outside every configured pool are left out, whatever a status says. For Local
    Services an owner needs a ready endpoint of each of them (sharing requires identical
    selectors, so in practice their endpoints are the same).
    """
    by_ip: dict[ipam.IP, tuple[list[ServiceKey], frozenset[str] | None]] = {}
    for service, ips, local in announced:
        for ip in ips:
            if not in_pool(ip):
                continue
            names, nodes = by_ip.get(ip, ([], None))
            names.append(service)
            if local:
                mine = local_nodes.get(service, frozenset())
                nodes = mine if nodes is None else nodes & mine
            by_ip[ip] = (names, nodes)
    return [
        AddressNeeds(ip, tuple(sorted(names)), nodes)
        for ip, (names, nodes) in sorted(by_ip.items(), key=lambda kv: (kv[0].version, int(kv[0])))
    ]


def candidates(need: AddressNeeds, eligible_nodes: Collection[str]) -> list[str]:
    if need.local_nodes is None:
        return sorted(eligible_nodes)
    return sorted(n for n in eligible_nodes if n in need.local_nodes)


def assign(
    needs: Iterable[AddressNeeds], eligible_nodes: Collection[str]
) -> dict[ipam.IP, str | None]:
    """The owner of every address (None where no node can announce it)."""
    return {need.ip: owner(need.ip, candidates(need, eligible_nodes)) for need in needs}


START_WAIT_MAX = 1.0  # seconds: the start-up wait, whatever the renew period
START_BOUND_MAX = 10.0  # seconds: the longest wait for peers still starting


def settle_times(renew_period: float, lease_duration: float) -> tuple[float, float]:
    """The start-up rule's ``wait`` and ``bound`` for a speaker's Lease timings.

    ``wait`` covers peers that started with us but wrote their Lease a moment after our join
    (our watch brings every earlier write before the echo of ours): one renew period, but no
    more than a second, since Lease writes reach us through the watch at once, not at the
    renew period (10 s by default) that only judges expiry. ``bound`` caps the wait for a peer
    still starting: two lease durations, at most ten seconds.
    """
    return min(renew_period, START_WAIT_MAX), min(2.0 * lease_duration, START_BOUND_MAX)


def settling(
    joined_for: float | None, *, starting_peers: Collection[str], wait: float, bound: float
) -> str | None:
    """Why a speaker that has just joined may not announce yet, or None once it may.

    A speaker that starts beside others (cluster boot, several restarts at once) must not
    announce before it has seen them: with a partial view it would win addresses that are not
    its own, answer beside their owner for a moment, and a client that took its gratuitous ARP
    ignores the owner's for a second (Linux's ``locktime``). So it waits a moment (``wait``,
    ``settle_times``) after joining, counted from when its Lease watch brought its own joined
    Lease back (so the watch is live and caught up, and every Lease written before it has
    arrived): a peer that started with it has written its Lease by then. The same holds after
    our Lease went stale (an API outage): peers may have come, gone or expired meanwhile in our
    view. Then, while a peer is still starting (its Lease says so), it waits for that peer to
    join, up to ``bound`` after joining: the peers that start together all begin with the same
    view. A lone restart waits ``wait`` only.
    """
    if joined_for is None:
        return "not joined yet (caches, links, or our Lease not back through the watch)"
    if joined_for < wait:
        return "just joined: waiting a moment to see every speaker"
    if starting_peers and joined_for < bound:
        return f"waiting for {', '.join(sorted(starting_peers))} to finish starting"
    return None
