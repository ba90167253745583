"""``lbctl status``: what each handled Service holds, why any is pending, how full pools are (pure).

The reasons come from a dry run of the controller's own allocator over the same inputs, so the
answer is the rule that actually applies, not a guess from old Events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lbctl import config, ownership
from lbctl.allocator import Allocator, Outcome
from lbctl.kube import services


@dataclass(frozen=True)
class ServiceRow:
    service: str
    addresses: list[str]
    pool: str
    state: str  # "ok", "pending" or "stale" (status differs from what the rules give)
    reason: str
    announced_by: list[str] = field(default_factory=list)  # per address: node, or why none


@dataclass(frozen=True)
class PoolRow:
    pool: str
    family: str
    size: int
    used: int
    free: int


@dataclass(frozen=True)
class NodeRow:
    node: str
    eligible: bool
    reason: str  # why it may not announce, "" when it may


@dataclass(frozen=True)
class Report:
    config_error: str | None
    services: list[ServiceRow]
    pools: list[PoolRow]
    nodes: list[NodeRow] = field(default_factory=list)  # with a speaker view only


def parse_config(
    configmap_data: Mapping[str, str] | None,
) -> tuple[config.PoolConfig | None, str | None]:
    """The config, or None and why not (status and check show a broken config, not fail)."""
    try:
        return config.parse_configmap(configmap_data), None
    except config.ConfigError as exc:
        return None, str(exc)


SpeakerView = Callable[[list[Mapping[str, Any]], config.PoolConfig], ownership.Ownership]


def build(
    service_objs: Iterable[Mapping[str, Any]],
    configmap_data: Mapping[str, str] | None,
    node_objs: Iterable[Mapping[str, Any]] = (),
    handling: services.Handling | None = None,
    speaker_view: SpeakerView | None = None,
) -> Report:
    return report(service_objs, parse_config(configmap_data), node_objs, handling, speaker_view)


def report(
    service_objs: Iterable[Mapping[str, Any]],
    parsed: tuple[config.PoolConfig | None, str | None],
    node_objs: Iterable[Mapping[str, Any]] = (),
    handling: services.Handling | None = None,
    speaker_view: SpeakerView | None = None,
) -> Report:
    """``build`` for a config already parsed (``parse_config``)."""
    cfg, error = parsed
    reserved: dict[Any, str] = {}
    for node in node_objs:
        reserved.update(services.node_addresses(node))
    alloc = Allocator(cfg, reserved)
    handling = handling or services.Handling()
    handled = [o for o in service_objs if handling.handles(o) and not services.deleting(o)]
    requests = sorted((services.request_of(o) for o in handled), key=lambda r: r.age)
    for req in requests:
        alloc.restore(req)
    view = speaker_view(handled, cfg) if speaker_view and cfg else None
    owners = view.owners if view else {}
    rows = []
    for req in requests:
        decision = alloc.decide(req)
        actual = [str(ip) for ip in req.current]
        if decision.outcome is Outcome.PENDING:
            state = "pending" if not actual else "stale"
        elif [str(ip) for ip in decision.ips] != actual:
            state = "stale"
        else:
            state = "ok"
        reason = decision.problem.message if decision.problem else ""
        if state == "stale" and not reason:
            reason = f"the rules give {', '.join(map(str, decision.ips))}: is the controller up?"
        announced = [owners.get(ip) or "<nobody>" for ip in req.current] if speaker_view else []
        pools_of = ",".join(dict.fromkeys(decision.pools))
        rows.append(ServiceRow(req.key, actual, pools_of, state, reason, announced))
    pools = []
    for pool in cfg.pools if cfg else ():
        for family in sorted(pool.families()):
            size, used = pool.size(family), alloc.in_use(pool, family)
            pools.append(PoolRow(pool.name, f"IPv{family}", size, used, size - used))
    nodes = [
        NodeRow(node, why is None, why.value if why else "")
        for node, why in (view.nodes.items() if view else ())
    ]
    return Report(error, rows, pools, nodes)


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
    parts = []
    if report.config_error:
        parts.append(f"CONFIG ERROR: {report.config_error}\n")
    parts.append(
        _table(
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
        )
    )
    parts.append("")
    parts.append(
        _table(
            ["POOL", "FAMILY", "SIZE", "USED", "FREE"],
            [[p.pool, p.family, str(p.size), str(p.used), str(p.free)] for p in report.pools],
        )
    )
    if report.nodes:
        parts.append("")
        parts.append(
            _table(
                ["NODE", "ANNOUNCES", "WHY NOT"],
                [[n.node, "yes" if n.eligible else "no", n.reason] for n in report.nodes],
            )
        )
    return "\n".join(parts) + "\n"
