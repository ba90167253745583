"""Who announces each address, from the cluster's objects as raw dicts (pure).

One function for the speaker and for ``lbctl status``, so what status shows is what the
speakers compute: the same needs, the same eligible nodes, the same election.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbctl import config, election, ipam
from lbctl.kube import endpoints, services


@dataclass(frozen=True)
class Ownership:
    needs: dict[ipam.IP, election.AddressNeeds]
    eligible: list[str]
    owners: dict[ipam.IP, str | None]


def compute(
    cfg: config.PoolConfig,
    *,
    service_objs: Iterable[Mapping[str, Any]],
    node_objs: Iterable[Mapping[str, Any]],
    slice_objs: Iterable[Mapping[str, Any]],
    live: Collection[str],
    handling: services.Handling,
    honour_exclude_label: bool = True,
) -> Ownership:
    infos = {}
    for obj in node_objs:
        name, labels = services.node_labels(obj)
        infos[name] = election.NodeInfo(name, labels)
    eligible = sorted(
        n
        for n in live
        if election.node_ineligible(
            infos.get(n, election.NodeInfo(n, {})),
            live=live,
            selector=cfg.announce.node_selector,
            honour_exclude_label=honour_exclude_label,
        )
        is None
    )
    local_nodes: dict[str, frozenset[str]] = {}
    for sl in slice_objs:
        key = endpoints.service_of(sl)
        if key:
            local_nodes[key] = local_nodes.get(key, frozenset()) | endpoints.serving_nodes(sl)
    entries = [
        (a.key, a.ips, a.local)
        for o in service_objs
        if (a := services.announced(o, handling)) is not None
    ]
    needs = election.needs(entries, local_nodes, lambda ip: cfg.pool_of(ip) is not None)
    return Ownership({n.ip: n for n in needs}, eligible, election.assign(needs, eligible))


def taken_from_others(
    owners: Mapping[ipam.IP, str | None], without_me: Mapping[ipam.IP, str | None], me: str
) -> set[ipam.IP]:
    """Addresses ``me`` wins only because it is in the election, from another node that holds
    them while ``me`` is out of it: on joining, those are the ones to take over with care."""
    return {
        ip for ip, node in owners.items() if node == me and without_me.get(ip) not in (None, me)
    }
