"""Reservations on the real API server: an address kept for one Service across its deletion."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from kube_helpers import ControllerProcess, check_findings, events, ingress, put_config, service
from kube_helpers import wait_for as _wait_for
from kubernetes import client

from lbctl.lab import controlplane

Start = Callable[..., ControllerProcess]

POOL = """
pools:
  - name: lan
    addresses: [198.51.100.200-198.51.100.203]
reservations:
  - {{address: 198.51.100.201, service: {ns}/web}}
"""


def wait_for(what: str, probe: Callable[[], object]) -> object:
    return _wait_for(what, probe, timeout=30)


def gone(core: client.CoreV1Api, ns: str, name: str) -> bool:
    return name not in [s.metadata.name for s in core.list_namespaced_service(ns).items]


def warning(core: client.CoreV1Api, ns: str, name: str, words: str) -> list[str]:
    return [
        e[2]
        for e in events(core, ns, name)
        if e[:2] == ("Warning", "AllocationFailed") and words in e[2]
    ]


def status_json(apiserver: controlplane.ControlPlane, ns: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "lbctl", "status", f"--kubeconfig={apiserver.kubeconfig}",
         f"--namespace={ns}", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    report: dict[str, object] = json.loads(out)
    return report


def test_delete_and_recreate_with_other_services_created_between_gets_the_same_address(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    put_config(core, namespace, POOL.format(ns=namespace))
    run_controller()
    core.create_namespaced_service(namespace, service("first"))
    assert wait_for("first", lambda: ingress(core, namespace, "first")) == ["198.51.100.200"]
    core.create_namespaced_service(namespace, service("web"))  # no annotation
    assert wait_for("web", lambda: ingress(core, namespace, "web")) == ["198.51.100.201"]

    core.delete_namespaced_service("web", namespace, _preload_content=False)
    wait_for("web to be gone (finalizer removed)", lambda: gone(core, namespace, "web"))
    for name in ("b", "c"):
        core.create_namespaced_service(namespace, service(name))
    assert wait_for("b", lambda: ingress(core, namespace, "b")) == ["198.51.100.202"]
    assert wait_for("c", lambda: ingress(core, namespace, "c")) == ["198.51.100.203"]
    # The pool is full but for web's address: nobody gets it, not even by asking.
    core.create_namespaced_service(namespace, service("d"))
    core.create_namespaced_service(
        namespace, service("e", annotations={"lbctl.io/loadBalancerIPs": "198.51.100.201"})
    )
    wait_for("PoolExhausted on d", lambda: warning(core, namespace, "d", "(PoolExhausted)"))
    (refusal,) = wait_for("Reserved on e", lambda: warning(core, namespace, "e", "(Reserved)"))
    assert refusal == (
        f"no address: 198.51.100.201 is reserved for {namespace}/web (reservations[0]) (Reserved)"
    )
    assert ingress(core, namespace, "d") == [] == ingress(core, namespace, "e")

    core.create_namespaced_service(namespace, service("web"))  # recreated, same name
    assert wait_for("web again", lambda: ingress(core, namespace, "web")) == ["198.51.100.201"]
    assert ingress(core, namespace, "d") == [] == ingress(core, namespace, "e")

    rows = status_json(apiserver, namespace)["reservations"]
    assert rows == [
        {
            "reservation": "reservations[0]",
            "address": "198.51.100.201",
            "pool": "lan",
            "service": f"{namespace}/web",
            "in_use": True,
            "held_by": [f"{namespace}/web"],
            "note": "",
        }
    ]


def test_a_reservation_for_a_namespace_its_pool_does_not_admit_is_refused_with_a_reason(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    put_config(
        core,
        namespace,
        f"""
pools:
  - {{name: lan, addresses: [198.51.100.200-198.51.100.201]}}
  - {{name: team, addresses: [198.51.100.210], namespaces: [elsewhere]}}
reservations:
  - {{address: 198.51.100.210, service: {namespace}/web}}
""",
    )
    run_controller()
    core.create_namespaced_service(namespace, service("web"))
    (why,) = wait_for("NotAdmitted on web", lambda: warning(core, namespace, "web", "NotAdmitted"))
    assert why == (
        "no address: reserved address 198.51.100.210 (reservations[0]): pool 'team' admits "
        "only namespaces elsewhere (NotAdmitted)"
    )
    assert ingress(core, namespace, "web") == []
    # The address stays kept: it goes to nobody else either.
    core.create_namespaced_service(namespace, service("other"))
    assert wait_for("other", lambda: ingress(core, namespace, "other")) == ["198.51.100.200"]
    assert check_findings(apiserver.kubeconfig, namespace, "NoLiveSpeaker") == [
        ("Pending", f"{namespace}/web"),
        ("ReservationNotAdmitted", "reservations[0]"),
    ]


def test_a_reservation_takes_nothing_away_and_the_named_service_gets_it_once_released(
    core: client.CoreV1Api, namespace: str, run_controller: Start
) -> None:
    put_config(core, namespace, "pools: [{name: lan, addresses: [198.51.100.200-198.51.100.203]}]")
    run_controller()
    core.create_namespaced_service(namespace, service("a"))
    core.create_namespaced_service(namespace, service("old"))
    assert wait_for("a", lambda: ingress(core, namespace, "a")) == ["198.51.100.200"]
    assert wait_for("old", lambda: ingress(core, namespace, "old")) == ["198.51.100.201"]
    # A rename: the address is reserved for the new name while the old Service still runs.
    put_config(core, namespace, POOL.format(ns=namespace).replace("/web", "/new"))
    core.create_namespaced_service(namespace, service("new"))
    wait_for(
        "new waits for old", lambda: warning(core, namespace, "new", f"held by {namespace}/old")
    )
    assert ingress(core, namespace, "old") == ["198.51.100.201"]
    core.delete_namespaced_service("old", namespace, _preload_content=False)
    assert wait_for("new", lambda: ingress(core, namespace, "new")) == ["198.51.100.201"]
