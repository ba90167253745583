"""``lbctl status``: what each Service holds, why any is pending, pools, reservations (pure).

The reasons come from a dry run of the controller's own allocator over the same inputs, so the
answer is the rule that actually applies, not a guess from old Events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

from lbctl import config, ipam, objects, ownership
from lbctl.allocator import (
    Allocator,
    Decision,
    Outcome,
    ServiceKey,
    ServiceRequest,
    wanted_families,
)


@dataclass(frozen=True)
class ServiceRow:
    service: str
    addresses: list[str]
    pool: str
    state: str  # "ok", "pending", "stale" (status differs from the rules) or "conflict"
    reason: str
    announced_by: list[str] = field(default_factory=list)  # per address: node, or why none


@dataclass(frozen=True)
class PoolRow:
    pool: str
    family: str
    size: int
    used: int  # held by Services
    free: int  # neither held nor reserved: what auto-assignment can still give
    reserved: int = 0  # held by no Service, kept for the Service reserving it
    conflict: int = 0  # held by no Service, used by another host (onConflict: reallocate)


@dataclass(frozen=True)
class ReservationRow:
    reservation: str  # "reservations[0]", as messages name it
    address: str
    pool: str
    service: str  # the Service it is kept for
    in_use: bool  # that Service's status holds it
    held_by: list[str]  # every Service whose status holds it
    note: str  # why it is not in use ("" when it is)


@dataclass(frozen=True)
class NodeRow:
    node: str
    eligible: bool
    reason: str  # why it may not announce, "" when it may
    # Pools whose announce policy leaves this (eligible) node out: "pool: why"
    not_for: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    config_error: str | None
    services: list[ServiceRow]
    pools: list[PoolRow]
    nodes: list[NodeRow] = field(default_factory=list)  # with a speaker view only
    reservations: list[ReservationRow] = field(default_factory=list)


def with_conflicts(report: Report, conflicts: Mapping[str, tuple[str, str]]) -> Report:
    """The report with every Service whose address another host uses (the speakers'
    ``lbctl.io/conflicts``) in state ``conflict``, the MAC and the node that saw it in REASON."""
    if not conflicts:
        return report
    rows = []
    for row in report.services:
        hit = [ip for ip in row.addresses if ip in conflicts]
        if hit:
            said = "; ".join(
                f"{ip} is in use by another host (MAC {conflicts[ip][0]}, seen by node "
                f"{conflicts[ip][1]}): not announced"
                for ip in hit
            )
            row = replace(row, state="conflict", reason="; ".join(filter(None, [said, row.reason])))
        rows.append(row)
    return replace(report, services=rows)


def parse_config(
    configmap_data: Mapping[str, str] | None,
) -> tuple[config.PoolConfig | None, str | None]:
    """The config, or None and why not (status and check show a broken config, not fail)."""
    try:
        return config.parse_configmap(configmap_data), None
    except config.ConfigError as exc:
        return None, str(exc)


SpeakerView = Callable[[list[objects.Obj], config.PoolConfig], ownership.Ownership]


def requests_of(
    service_objs: Iterable[objects.Obj],
    namespace_objs: Iterable[objects.Obj] | None,
) -> list[ServiceRequest]:
    """The Services' requests, oldest first, each with its Namespace's labels when
    ``namespace_objs`` (every Namespace) is given; None: labels not known."""
    by_name = {objects.node_labels(n)[0]: n for n in namespace_objs or ()}  # name → object
    known = namespace_objs is not None
    return sorted(
        (
            objects.request_of(o, by_name.get(objects.key_of(o).split("/", 1)[0]))
            if known
            else objects.request_of(o)
            for o in service_objs
        ),
        key=lambda r: r.age,
    )


def report(
    service_objs: Iterable[objects.Obj],
    parsed: tuple[config.PoolConfig | None, str | None],
    node_objs: Iterable[objects.Obj] = (),
    handling: objects.Handling | None = None,
    speaker_view: SpeakerView | None = None,
    namespace_objs: Iterable[objects.Obj] | None = None,
    conflicts: Mapping[ipam.IP, str] | None = None,
) -> Report:
    """``build`` for a config already parsed (``parse_config``). ``conflicts``: addresses
    another host uses (``leases.by_address``), which the controller moves Services off in
    pools with ``onConflict: reallocate``."""
    cfg, error = parsed
    reserved: dict[ipam.IP, str] = {}
    for node in node_objs:
        reserved.update(objects.node_addresses(node))
    alloc = Allocator(cfg, reserved, conflicts)
    handling = handling or objects.Handling()
    handled = [o for o in service_objs if handling.handles(o) and not objects.deleting(o)]
    requests = requests_of(handled, namespace_objs)
    for req in requests:
        alloc.restore(req)
    view = speaker_view(handled, cfg) if speaker_view and cfg else None
    owners = view.owners if view else {}
    rows = []
    decisions: dict[ServiceKey, Decision] = {}
    for req in requests:
        decision = decisions[req.key] = alloc.decide(req)
        actual = [str(ip) for ip in req.current]
        if decision.outcome is Outcome.PENDING:
            state = "pending" if not actual else "stale"
        elif [str(ip) for ip in decision.ips] != actual:
            state = "stale"
        else:
            state = "ok"
        reason = decision.problem.message if decision.problem else ""
        if state == "stale" and not reason:
            why = "".join(f" ({c.message})" for c in decision.cleared)
            given = ", ".join(map(str, decision.ips))
            reason = f"the rules give {given}{why}: is the controller up?"
        announced = (
            [owners.get(ip) or f"<nobody: {view.why_nobody(ip, cfg)}>" for ip in req.current]
            if view and cfg
            else ["<nobody>"] * len(req.current)
            if speaker_view
            else []
        )
        pools_of = ",".join(dict.fromkeys(decision.pools))
        rows.append(ServiceRow(req.key, actual, pools_of, state, reason, announced))
    kept: dict[tuple[str, int], int] = {}  # reserved addresses no Service holds
    for res in cfg.reservations if cfg else ():
        if not alloc.holders(res.address):
            where = (res.pool, res.address.version)
            kept[where] = kept.get(where, 0) + 1
    lost: dict[tuple[str, int], int] = {}  # conflicted addresses nobody holds nor reserves
    for ip in alloc.conflicts if cfg else ():
        pool = cfg.pool_of(ip) if cfg else None
        free = not alloc.holders(ip) and not (cfg and cfg.reservation_of(ip))
        if pool and free and alloc.unavailable(ip):
            lost[(pool.name, ip.version)] = lost.get((pool.name, ip.version), 0) + 1
    pools = []
    for pool in cfg.pools if cfg else ():
        for family in sorted(pool.families()):
            size, used = pool.size(family), alloc.in_use(pool, family)
            n, c = kept.get((pool.name, family), 0), lost.get((pool.name, family), 0)
            pools.append(PoolRow(pool.name, f"IPv{family}", size, used, size - used - n - c, n, c))
    silenced_by_pool = view.silenced if view else {}
    nodes = [
        NodeRow(
            node,
            why is None,
            why.value if why else "",
            [
                f"{pool}: {silenced[node].value}"
                for pool, silenced in silenced_by_pool.items()
                if node in silenced
            ],
        )
        for node, why in (view.nodes.items() if view else ())
    ]
    reservations = _reservations(cfg, requests, decisions, rows) if cfg else []
    return Report(error, rows, pools, nodes, reservations)


def _reservations(
    cfg: config.PoolConfig,
    requests: list[ServiceRequest],
    decisions: Mapping[ServiceKey, Decision],
    rows: list[ServiceRow],
) -> list[ReservationRow]:
    """Each reservation: who holds its address now, and why its Service does not, if not."""
    by_key: dict[ServiceKey, ServiceRequest] = {r.key: r for r in requests}
    row_of = {r.service: r for r in rows}
    holders: dict[ipam.IP, list[str]] = {}
    for req in requests:
        for ip in req.current:
            holders.setdefault(ip, []).append(req.key)
    refused = dict(config.unusable_reservations(cfg))
    out = []
    for res in cfg.reservations:
        held_by = holders.get(res.address, [])
        in_use = res.service in held_by
        note = "" if in_use else _why_unused(res, by_key.get(res.service), held_by, refused)
        if not note and not in_use:
            row, decision = row_of[res.service], decisions[res.service]
            if res.address in decision.ips:
                note = f"not in {res.service}'s status yet: is the controller up?"
            else:
                note = row.reason or f"{res.service} holds {', '.join(row.addresses)}"
        out.append(
            ReservationRow(
                res.label, str(res.address), res.pool, res.service, in_use, held_by, note
            )
        )
    return out


def _why_unused(
    res: config.Reservation,
    req: ServiceRequest | None,
    held_by: list[str],
    refused: Mapping[config.Reservation, str],
) -> str:
    """Why ``res`` does not give its Service the address, when the reason is not a decision."""
    if held_by:
        return f"held by {', '.join(held_by)}; {res.service} gets it once released"
    if res in refused:
        return refused[res]
    if req is None:
        return f"no LoadBalancer Service {res.service}: kept free for it"
    if req.requested_ips:
        return f"{res.service} requests {', '.join(map(str, req.requested_ips))} instead"
    if req.requested_pool not in (None, res.pool):
        return f"{res.service} requests pool {req.requested_pool!r} instead"
    if res.address.version not in wanted_families(req):
        return f"{res.service} does not use IPv{res.address.version}"
    return ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def render(report: Report, output: str = "table") -> str:
    if output == "json":
        return json.dumps(asdict(report), indent=2)
    # (headers, rows, shown when empty): Services and pools always show, their headers alone
    # saying there are none; reservations and nodes only when there are some.
    tables: list[tuple[list[str], list[list[str]], bool]] = [
        (
            ["SERVICE", "ADDRESSES", "POOL", "ANNOUNCED BY", "STATE", "REASON"],
            [
                [
                    r.service,
                    ",".join(r.addresses) or "<pending>",
                    r.pool or "-",
                    ",".join(r.announced_by) or "-",
                    r.state,
                    r.reason,
                ]
                for r in report.services
            ],
            True,
        ),
        (
            ["POOL", "FAMILY", "SIZE", "USED", "FREE", "RESERVED", "CONFLICT"],
            [
                [
                    p.pool,
                    p.family,
                    *(str(n) for n in (p.size, p.used, p.free, p.reserved, p.conflict)),
                ]
                for p in report.pools
            ],
            True,
        ),
        (
            ["RESERVATION", "ADDRESS", "POOL", "FOR", "IN USE", "HELD BY", "NOTE"],
            [
                [
                    r.reservation,
                    r.address,
                    r.pool,
                    r.service,
                    "yes" if r.in_use else "no",
                    ",".join(r.held_by) or "-",
                    r.note,
                ]
                for r in report.reservations
            ],
            False,
        ),
        (
            ["NODE", "ANNOUNCES", "WHY NOT"],
            [
                [
                    n.node,
                    ("yes, but not every pool" if n.not_for else "yes") if n.eligible else "no",
                    n.reason or "; ".join(n.not_for),
                ]
                for n in report.nodes
            ],
            False,
        ),
    ]
    parts = [f"CONFIG ERROR: {report.config_error}\n"] if report.config_error else []
    parts.append(
        "\n\n".join(_table(headers, rows) for headers, rows, always in tables if rows or always)
    )
    return "\n".join(parts) + "\n"
