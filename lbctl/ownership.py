"""Who announces each address, from the cluster's objects as raw dicts (pure).

One function for the speaker and for ``lbctl status``, so what status shows is what the
speakers compute: the same needs, the same eligible nodes, the same election.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from lbctl import config, election, ipam, objects
from lbctl.allocator import ServiceKey


@dataclass(frozen=True)
class Ownership:
    needs: dict[ipam.IP, election.AddressNeeds]
    eligible: list[str]
    owners: dict[ipam.IP, str | None]
    # Every node known from a Node object or a live Lease → why it may not announce (None: it may)
    nodes: dict[str, election.Ineligible | None]


def compute(
    cfg: config.PoolConfig,
    *,
    service_objs: Iterable[objects.Obj],
    node_objs: Iterable[objects.Obj],
    slice_objs: Iterable[objects.Obj],
    live: Collection[str],
    handling: objects.Handling,
    starting: Collection[str] = (),
    honour_exclude_label: bool = True,
) -> Ownership:
    infos = {}
    for obj in node_objs:
        info = objects.node_info(obj)
        infos[info.name] = info
    why = {
        n: election.node_ineligible(
            infos.get(n, election.NodeInfo(n, {}, exists=False)),
            live=live,
            starting=starting,
            selector=cfg.announce.node_selector,
            honour_exclude_label=honour_exclude_label,
        )
        for n in sorted(set(infos) | set(live) | set(starting))
    }
    eligible = [n for n, reason in why.items() if reason is None]
    local_nodes: dict[ServiceKey, frozenset[str]] = {}
    for sl in slice_objs:
        key = objects.service_of(sl)
        if key:
            local_nodes[key] = local_nodes.get(key, frozenset()) | objects.serving_nodes(sl)
    entries = [
        (a.key, a.ips, a.local)
        for o in service_objs
        if (a := objects.announced(o, handling)) is not None
    ]
    needs = election.needs(entries, local_nodes, lambda ip: cfg.pool_of(ip) is not None)
    return Ownership({n.ip: n for n in needs}, eligible, election.assign(needs, eligible), why)
