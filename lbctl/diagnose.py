"""The cluster view that ``lbctl status`` and ``lbctl check`` both judge (pure).

One reading of the cluster (``kube/cluster.py`` makes it: Services, Nodes, EndpointSlices, the
pool ConfigMap's data, the speaker Leases judged by the API server's clock) becomes a
``ClusterView``; ``status_report`` and ``findings`` run the components' own rules over it
(``status`` for the allocator's dry run, ``ownership`` for the speakers' election, ``audit``
for every way an address can be wrong), so the two commands never disagree about the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lbctl import audit, config, leases, objects, ownership, status
from lbctl.leases import LeaseState


@dataclass(frozen=True)
class ClusterView:
    """One reading of everything ``status`` and ``check`` judge, as raw objects."""

    services: list[objects.Obj]
    nodes: list[objects.Obj]
    config_data: Mapping[str, str] | None  # the pool ConfigMap's data; None: no ConfigMap
    leases: dict[str, LeaseState]  # speaker node → its Lease's state
    slices: list[objects.Obj]  # EndpointSlices
    handling: objects.Handling
    conflicts: dict[str, tuple[str, str]]  # address → (other host's MAC, node that saw it)
    namespaces: list[objects.Obj] | None = None  # None: not readable (a namespaceSelector's labels)

    def speakers(self, state: LeaseState) -> set[str]:
        """The nodes whose speaker Lease is in ``state``."""
        return {node for node, s in self.leases.items() if s is state}


def status_report(view: ClusterView) -> status.Report:
    """``lbctl status``: the allocator's dry run, with who announces each address."""

    def speaker_view(
        objs: list[objects.Obj], pool_config: config.PoolConfig
    ) -> ownership.Ownership:
        return ownership.compute(
            pool_config,
            service_objs=objs,
            node_objs=view.nodes,
            slice_objs=view.slices,
            live=view.speakers(LeaseState.LIVE),
            starting=view.speakers(LeaseState.STARTING),
            handling=view.handling,
        )

    report = status.report(
        view.services,
        status.parse_config(view.config_data),
        view.nodes,
        view.handling,
        speaker_view,
        view.namespaces,
        leases.by_address(view.conflicts),
    )
    return status.with_conflicts(report, view.conflicts)


def findings(view: ClusterView) -> list[audit.Finding]:
    """``lbctl check``: every finding about the cluster's addresses, pools and speakers."""
    return audit.check(
        view.services,
        view.config_data,
        node_objs=view.nodes,
        slice_objs=view.slices,
        live=view.speakers(LeaseState.LIVE),
        expired=view.speakers(LeaseState.EXPIRED),
        unheard=view.speakers(LeaseState.UNHEARD),
        handling=view.handling,
        conflicts=view.conflicts,
        namespace_objs=view.namespaces,
    )
