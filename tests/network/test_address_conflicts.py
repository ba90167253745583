"""Address conflicts on the namespace LAN: a host outside the cluster that uses a pool address
(its kernel answers for it) keeps lbctl from announcing it until the host is gone; with
``onConflict: reallocate`` the controller moves the Service to another address."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kube_helpers import events, ingress, put_config, wait_for
from speaker_helpers import SpeakerLan

Build = Callable[..., SpeakerLan]


def conflict_events(sl: SpeakerLan, name: str, reason: str) -> list[str]:
    return [m for _, r, m in events(sl.core, sl.namespace, name) if r == reason]


@pytest.mark.parametrize("family", [4, 6])
def test_a_foreign_host_on_a_pool_address_stops_the_announcement_until_it_is_gone(
    speaker_lan: Build, family: int
) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip, prefix = (sl.ip4(212), "32") if family == 4 else (sl.ip6(0x212), "128")
    intruder = sl.mac("client")  # the LAN's client plays a hand-set host
    add = ["ip", "addr", "add", f"{ip}/{prefix}", "dev", "eth0"]
    sl.lan.run("client", [*add, "nodad"] if family == 6 else add)
    name = f"web{family}"
    sl.lb_service(name, [ip], **({"ipFamilies": ["IPv6"]} if family == 6 else {}))
    said = wait_for("AddressConflict", lambda: conflict_events(sl, name, "AddressConflict"))
    assert intruder in said[0] and ip in said[0]
    assert ("AddressConflict", ip) in wait_for(
        "lbctl check to see it", lambda: [f for f in sl.check() if f[0] == "AddressConflict"]
    )
    owner = sl.expected_owner(ip)
    assert f"announcing {ip}" not in sl.speakers[owner].tail()
    # The host gives the address up: the owner finds it free at its next probe and announces.
    sl.lan.run("client", ["ip", "addr", "del", f"{ip}/{prefix}", "dev", "eth0"])
    wait_for("AddressConflictResolved",
             lambda: conflict_events(sl, name, "AddressConflictResolved"), timeout=15)  # fmt: skip
    if family == 4:
        assert wait_for("the owner's answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    else:
        wait_for("the announcement", lambda: f"announcing {ip}" in sl.speakers[owner].tail())
    assert wait_for("lbctl check clean", lambda: sl.check() == [])


def test_a_handover_between_nodes_is_never_a_conflict(speaker_lan: Build) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(213)
    sl.lb_service("web", [ip])
    first = sl.expected_owner(ip)
    assert wait_for("first owner", lambda: sl.arp_replies(ip, 1)) == {sl.mac(first)}
    sl.speakers[first].stop()  # SIGTERM: a graceful handover
    second = sl.expected_owner(ip, [h for h in sl.nodes if h != first])
    assert wait_for("the heir", lambda: sl.arp_replies(ip, 1) == {sl.mac(second)})
    assert conflict_events(sl, "web", "AddressConflict") == []
    assert [f for f in sl.check() if f[0] == "AddressConflict"] == []


def test_with_reallocate_the_service_moves_and_the_new_address_works(
    speaker_lan: Build, run_controller: Callable[..., object]
) -> None:
    probe = ", conflicts: {recheckSeconds: 2}"
    sl = speaker_lan(3)
    put_config(
        sl.core,
        sl.namespace,
        sl.pool(probe).replace("}]\n", ", onConflict: reallocate}]\n", 1),
    )
    old, new = sl.ip4(200), sl.ip4(201)  # the first two free addresses of the pool
    intruder = sl.mac("client")  # the LAN's client plays a hand-set host on the first
    sl.lan.run("client", ["ip", "addr", "add", f"{old}/32", "dev", "eth0"])
    sl.start_all()
    run_controller()
    sl.core.create_namespaced_service(
        sl.namespace,
        {"metadata": {"name": "web"},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}},
    )  # fmt: skip
    assert wait_for("web to move", lambda: ingress(sl.core, sl.namespace, "web") == [new])
    (moved,) = wait_for("AddressMoved", lambda: conflict_events(sl, "web", "AddressMoved"))
    assert moved.startswith(f"moved from {old} to {new}: {old} is in use by another host")
    assert intruder in moved
    # The new address answers from one node's MAC; the old one only from the other host.
    owner = sl.expected_owner(new)
    assert wait_for("the new owner's answer", lambda: sl.arp_replies(new, 1)) == {sl.mac(owner)}
    assert sl.arp_replies(old) == {intruder}
    assert not any(f"announcing {old}" in sl.speakers[h].tail() for h in sl.nodes)
    # check names the conflict (the old address is kept out of use), and nothing else.
    assert wait_for("lbctl check", sl.check) == [("AddressConflict", old)]
    # The host leaves: the address is free again, and the Service stays where it is.
    sl.lan.run("client", ["ip", "addr", "del", f"{old}/32", "dev", "eth0"])
    assert wait_for("lbctl check clean", lambda: sl.check() == [], timeout=15)
    assert ingress(sl.core, sl.namespace, "web") == [new]
