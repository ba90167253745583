"""``lbctl check``: every way the cluster's addresses can be wrong, from one reading (pure).

Built on what ``lbctl status`` computes (the controller's own allocator in a dry run, and the
speakers' own election), so a finding here is a disagreement with the rules the components
apply, not a second opinion. The fault tests use it as their invariant checker.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from lbctl import allocator, config, ipam, leases, objects, ownership, status


class Kind(enum.StrEnum):
    CONFIG_ERROR = "ConfigError"  # the pool ConfigMap does not parse
    HELD_TWICE = "HeldTwice"  # two Services hold one address and may not share it
    OUTSIDE_POOLS = "OutsidePools"  # a status address lies in no configured pool
    STALE = "Stale"  # a status differs from what the rules give
    PENDING = "Pending"  # a Service has no address; the reason says why
    SPEAKER_DOWN = "SpeakerDown"  # a speaker's Lease has expired (not released)
    # no live, eligible speaker its pool's announce policy lets in can announce an address (an
    # address of a pool with announce: false is meant to have none: not a finding)
    NO_LIVE_SPEAKER = "NoLiveSpeaker"
    NO_READY_ENDPOINT = "NoReadyEndpoint"  # Local policy and no node has a ready endpoint
    RESERVATION_NOT_ADMITTED = "ReservationNotAdmitted"  # its pool refuses the namespace
    ADDRESS_CONFLICT = "AddressConflict"  # another host on the LAN uses an assigned address


@dataclass(frozen=True)
class Finding:
    kind: Kind
    subject: str  # a Service (namespace/name), an address or a node
    message: str


def check(
    service_objs: Iterable[objects.Obj],
    configmap_data: Mapping[str, str] | None,
    *,
    node_objs: Iterable[objects.Obj] = (),
    slice_objs: Iterable[objects.Obj] = (),
    live: Collection[str] = (),
    expired: Collection[str] = (),
    unheard: Collection[str] = (),
    handling: objects.Handling | None = None,
    conflicts: Mapping[str, tuple[str, str]] | None = None,
    namespace_objs: Iterable[objects.Obj] | None = None,
) -> list[Finding]:
    """Every finding, in a stable order. ``namespace_objs``: every Namespace (their labels,
    for pools with a namespaceSelector); None when they could not be read."""
    handling = handling or objects.Handling()
    svcs = [o for o in service_objs if handling.handles(o)]
    nodes = list(node_objs)
    slices = list(slice_objs)
    names = {objects.node_labels(n)[0] for n in nodes}
    findings = [  # a deleted node's Lease is left to expire: not a speaker down
        Finding(Kind.SPEAKER_DOWN, node, "its speaker Lease expired without being released")
        for node in sorted(expired)
        if node in names
    ]
    findings += [  # its Lease is still live, but the LAN says it is gone (fast liveness)
        Finding(Kind.SPEAKER_DOWN, node, "its speaker is not heard on the LAN by a live speaker")
        for node in sorted(unheard)
        if node in names
    ]
    requests = [objects.request_of(o) for o in svcs]  # deleting ones still hold theirs
    held = {str(ip) for req in requests for ip in req.current}
    findings += [
        Finding(
            Kind.ADDRESS_CONFLICT,
            ip,
            f"another host on the LAN uses it (MAC {mac}, seen by node {node}): "
            + ("not announced" if ip in held else "no Service holds it, none is given it"),
        )
        for ip, (mac, node) in sorted((conflicts or {}).items())
    ]
    deleting = {objects.key_of(o) for o in svcs if objects.deleting(o)}
    findings += _held_twice(requests, deleting)
    parsed = cfg, error = status.parse_config(configmap_data)
    if cfg is None:
        return [*findings, Finding(Kind.CONFIG_ERROR, "config", str(error))]
    findings += [
        Finding(Kind.RESERVATION_NOT_ADMITTED, res.label, why)
        for res, why in config.unusable_reservations(cfg)
    ]

    for req in requests:
        for ip in req.current:
            if cfg.pool_of(ip) is None:
                findings.append(Finding(Kind.OUTSIDE_POOLS, req.key, f"{ip} is in no pool"))

    report = status.report(
        svcs,
        parsed,
        nodes,
        handling,
        namespace_objs=namespace_objs,
        conflicts=leases.by_address(conflicts or {}),
    )
    for row in report.services:
        if row.state == "pending":
            findings.append(Finding(Kind.PENDING, row.service, row.reason))
        elif row.state == "stale":
            findings.append(
                Finding(Kind.STALE, row.service, f"holds {','.join(row.addresses)}: {row.reason}")
            )

    own = ownership.compute(
        cfg,
        service_objs=[o for o in svcs if not objects.deleting(o)],
        node_objs=nodes,
        slice_objs=slices,
        live=live,
        handling=handling,
    )
    for ip, need in own.needs.items():
        pool = cfg.pool_of(ip)
        if own.owners.get(ip) is not None or (pool is not None and pool.announce == ()):
            continue  # announced, or its pool is not to be announced (announce: false)
        served = ", ".join(need.services)
        if need.local_nodes is not None and not need.local_nodes:
            findings.append(
                Finding(
                    Kind.NO_READY_ENDPOINT,
                    str(ip),
                    f"externalTrafficPolicy Local and no ready endpoint ({served})",
                )
            )
        else:
            findings.append(
                Finding(
                    Kind.NO_LIVE_SPEAKER,
                    str(ip),
                    f"{own.why_nobody(ip, cfg)} ({served})",
                )
            )
    return findings


def _held_twice(
    requests: list[allocator.ServiceRequest], deleting: Collection[allocator.ServiceKey]
) -> list[Finding]:
    by_ip: dict[ipam.IP, list[allocator.ServiceRequest]] = {}
    for req in requests:
        for ip in req.current:
            by_ip.setdefault(ip, []).append(req)
    found = []
    for ip, holders in sorted(by_ip.items(), key=lambda kv: (kv[0].version, int(kv[0]))):
        holders.sort(key=lambda r: r.age)
        for i, a in enumerate(holders):
            for b in holders[i + 1 :]:
                why = allocator.may_not_share(a, b)
                if why is not None:
                    gone = [k for k in (a.key, b.key) if k in deleting]
                    if gone:  # kube-proxy still serves it until its finalizers are done
                        why += f" ({', '.join(gone)} being deleted)"
                    found.append(Finding(Kind.HELD_TWICE, str(ip), f"{a.key} and {b.key}: {why}"))
    return found


def render(findings: list[Finding]) -> str:
    if not findings:
        return "ok: no findings\n"
    lines = [f"{f.kind.value:<16} {f.subject}: {f.message}" for f in findings]
    return "\n".join(lines) + f"\n{len(findings)} finding(s)\n"
