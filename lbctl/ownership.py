"""Who announces each address, from the cluster's objects as raw dicts (pure).

One function for the speaker and for ``lbctl status``, so what status shows is what the
speakers compute: the same needs, the same eligible nodes, the same election.

Each address is elected among the eligible nodes its pool's announce policy lets announce it
(``config.PoolConfig.announcing``): a pool's own ``announce`` rules, else the global
``announce.nodeSelector``; a pool with ``announce: false`` has no candidate, so no owner.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from lbctl import config, election, ipam, objects
from lbctl.allocator import ServiceKey
from lbctl.selectors import Selector


@dataclass(frozen=True)
class Ownership:
    needs: dict[ipam.IP, election.AddressNeeds]
    eligible: list[str]
    owners: dict[ipam.IP, str | None]
    # Every node known from a Node object or a live Lease → why it may not announce (None: it may)
    nodes: dict[str, election.Ineligible | None]
    # pool → eligible node → why its announce policy leaves that node out
    silenced: dict[str, dict[str, config.Silence]] = field(default_factory=dict)

    def why_nobody(self, ip: ipam.IP, cfg: config.PoolConfig) -> str:
        """Why no node announces ``ip`` (it has no owner), in words for ``lbctl status``."""
        pool = cfg.pool_of(ip)
        if pool is None:
            return config.Silence.NOT_IN_POOL.value
        if pool.announce == ():
            return f"pool {pool.name!r} is not announced (announce: false)"
        need = self.needs.get(ip)
        if need is not None and need.local_nodes is not None and not need.local_nodes:
            return "no node has a ready endpoint (externalTrafficPolicy: Local)"
        left_out = self.silenced.get(pool.name, {})
        if left_out and not [n for n in self.eligible if n not in left_out]:
            return f"no eligible node matches the announce policy of pool {pool.name!r}"
        return "no live, eligible speaker can announce it"


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
    # Without pool policies the global nodeSelector is a node's own rule, as it always was.
    by_node = not cfg.pools or all(p.announce is None for p in cfg.pools)
    why = {
        n: election.node_ineligible(
            infos.get(n, election.NodeInfo(n, {}, exists=False)),
            live=live,
            starting=starting,
            selector=cfg.announce.node_selector if by_node else Selector(),
            honour_exclude_label=honour_exclude_label,
        )
        for n in sorted(set(infos) | set(live) | set(starting))
    }
    allowed: dict[str, list[str]] = {}
    silenced: dict[str, dict[str, config.Silence]] = {}
    for pool in cfg.pools:
        allowed[pool.name], silenced[pool.name] = [], {}
        for n in (n for n, reason in why.items() if reason is None):
            how = pool.announcing(infos[n].labels if n in infos else {}, cfg.announce)
            if isinstance(how, config.Silence):
                silenced[pool.name][n] = how
            else:
                allowed[pool.name].append(n)
    if not by_node:  # a node no pool lets announce is out altogether
        anywhere = {n for nodes in allowed.values() for n in nodes}
        for n, reason in why.items():
            if reason is None and n not in anywhere:
                why[n] = election.Ineligible.POOL_POLICY
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
    owners = {}
    for need in needs:
        home = cfg.pool_of(need.ip)
        nodes = allowed.get(home.name, []) if home is not None else []
        owners[need.ip] = election.owner(need.ip, election.candidates(need, nodes))
    return Ownership({n.ip: n for n in needs}, eligible, owners, why, silenced)
