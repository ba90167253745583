"""onConflict: reallocate on the real API server: the controller reads the speakers' conflict
reports from their Leases and moves the Service; the address stays out of use meanwhile."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from kube_helpers import ControllerProcess, check_findings, events, ingress, put_config, service
from kube_helpers import wait_for as _wait_for
from kubernetes import client

from lbctl import leases
from lbctl.lab import controlplane

Start = Callable[..., ControllerProcess]
FOREIGN = "02:99:00:00:00:01"


def wait_for(what: str, probe: Callable[[], object]) -> object:
    return _wait_for(what, probe, timeout=30)


def report(coord: client.CoordinationV1Api, ns: str, node: str, said: str) -> None:
    """Write speaker ``node``'s Lease, live, saying ``lbctl.io/conflicts: said``."""
    body = {
        "metadata": {
            "name": leases.lease_name(node),
            "labels": {leases.LABEL: leases.LABEL_VALUE},
            "annotations": {leases.CONFLICTS: said},
        },
        "spec": {
            "holderIdentity": node,
            "renewTime": datetime.datetime.now(datetime.UTC).isoformat(),
            "leaseDurationSeconds": 3600,  # live for the whole test
        },
    }
    try:
        coord.patch_namespaced_lease(leases.lease_name(node), ns, body)
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise
        coord.create_namespaced_lease(ns, body)


def test_a_conflicted_address_moves_its_service_and_is_given_to_no_one_until_it_clears(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    coord = client.CoordinationV1Api(core.api_client)
    put_config(
        core,
        namespace,
        """
pools:
  - {name: lan, addresses: [198.51.100.200-198.51.100.202], onConflict: reallocate}
  - {name: fixed, addresses: [198.51.100.210], autoAssign: false, onConflict: hold}
""",
    )
    run_controller()
    core.create_namespaced_service(namespace, service("web"))
    core.create_namespaced_service(
        namespace, service("db", annotations={"lbctl.io/address-pool": "fixed"})
    )
    assert wait_for("web", lambda: ingress(core, namespace, "web")) == ["198.51.100.200"]
    assert wait_for("db", lambda: ingress(core, namespace, "db")) == ["198.51.100.210"]

    report(coord, namespace, "n1", f"198.51.100.200={FOREIGN},198.51.100.210={FOREIGN}")
    wait_for("web to move", lambda: ingress(core, namespace, "web") == ["198.51.100.201"])
    moved = [e for e in events(core, namespace, "web") if e[1] == "AddressMoved"]
    assert moved == [
        (
            "Warning",
            "AddressMoved",
            "moved from 198.51.100.200 to 198.51.100.201: 198.51.100.200 is in use by another "
            f"host on the LAN (MAC {FOREIGN}, seen by node n1) and pool 'lan' has onConflict: "
            "reallocate",
        )
    ]
    assert ingress(core, namespace, "db") == ["198.51.100.210"]  # hold: it stays
    # While the conflict lasts, the old address goes to nobody.
    core.create_namespaced_service(namespace, service("next"))
    assert wait_for("next", lambda: ingress(core, namespace, "next")) == ["198.51.100.202"]
    core.create_namespaced_service(namespace, service("last"))
    wait_for(
        "last to wait",
        lambda: any("PoolExhausted" in e[2] for e in events(core, namespace, "last")),
    )
    assert check_findings(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == [
        ("AddressConflict", "198.51.100.200"),
        ("AddressConflict", "198.51.100.210"),
        ("Pending", f"{namespace}/last"),
    ]

    report(coord, namespace, "n1", "")  # the other host is gone
    assert wait_for("last", lambda: ingress(core, namespace, "last")) == ["198.51.100.200"]
    assert ingress(core, namespace, "web") == ["198.51.100.201"]  # nothing moves back
