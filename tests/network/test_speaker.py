"""Real speakers in node namespaces, a real API server, a client namespace: what the LAN sees."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from conftest import SpeakerLan
from kube_helpers import wait_for
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
from scapy.layers.l2 import ARP, Ether

Build = Callable[..., SpeakerLan]


def garp_macs(packets: list, ip: str) -> dict[int, set[str]]:  # type: ignore[type-arg]
    """Gratuitous ARP for ``ip`` by opcode: {1: request senders, 2: reply senders}."""
    out: dict[int, set[str]] = {1: set(), 2: set()}
    for p in packets:
        if ARP in p and p[ARP].psrc == ip == p[ARP].pdst:
            out[p[ARP].op].add(p[Ether].src)
    return out


def test_one_node_announces_an_ipv4_address_in_both_forms_and_alone_answers(
    speaker_lan: Build,
) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(200)
    owner = sl.expected_owner(ip)
    with sl.lan.capture("client", "arp") as cap:
        sl.lb_service("web", [ip])
        wait_for(
            "the gratuitous reply", lambda: sl.speakers[owner].tail().count(f"announcing {ip}") > 0
        )
        time.sleep(1.5)  # two rounds, 1.1 s apart
    garp = garp_macs(cap.packets(), ip)
    assert garp == {1: {sl.mac(owner)}, 2: {sl.mac(owner)}}
    assert sl.arp_replies(ip) == {sl.mac(owner)}


def test_one_node_answers_neighbor_solicitations_for_an_ipv6_address(speaker_lan: Build) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip6(0x200)
    owner = sl.expected_owner(ip)
    with sl.lan.capture("client", "icmp6") as cap:
        sl.lb_service("web6", [ip], ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
        wait_for("the announcement", lambda: f"announcing {ip}" in sl.speakers[owner].tail())
        # The client's kernel asks (a Neighbor Solicitation) before its first packet.
        sl.lan.run("client", ["ping", "-6", "-c", "2", "-W", "1", ip], check=False)
        neigh = sl.lan.run("client", ["ip", "-6", "neigh", "show", ip]).stdout
    assert f"lladdr {sl.mac(owner)}" in neigh
    advertisements = [p for p in cap.packets() if ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == ip]
    assert {p[Ether].src for p in advertisements} == {sl.mac(owner)}
    unsolicited = [p for p in advertisements if p[ICMPv6ND_NA].S == 0]
    solicited = [p for p in advertisements if p[ICMPv6ND_NA].S == 1]
    assert unsolicited and all(p[ICMPv6ND_NA].O == 1 for p in unsolicited)
    assert solicited and all(p[ICMPv6NDOptDstLLAddr].lladdr == sl.mac(owner) for p in solicited)


def test_killing_the_owner_moves_the_address(speaker_lan: Build) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(201)
    owner = sl.expected_owner(ip)
    sl.lb_service("web", [ip])
    assert wait_for("the owner's answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    survivors = [h for h in sl.nodes if h != owner]
    heir = sl.expected_owner(ip, survivors)
    with sl.lan.capture("client", "arp") as cap:
        sl.kill(owner)
        wait_for(
            "the heir's announcement",
            lambda: f"announcing {ip}" in sl.speakers[heir].tail(),
            timeout=15,
        )
        time.sleep(0.2)
    assert sl.mac(heir) in garp_macs(cap.packets(), ip)[1]
    assert sl.arp_replies(ip) == {sl.mac(heir)}


def test_sigterm_and_drain_hand_over(speaker_lan: Build) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(202)
    sl.lb_service("web", [ip])
    first = sl.expected_owner(ip)
    assert wait_for("first owner", lambda: sl.arp_replies(ip, 1)) == {sl.mac(first)}
    # SIGTERM: the speaker gives up its Lease; the next owner announces.
    sl.speakers[first].stop()
    second = sl.expected_owner(ip, [h for h in sl.nodes if h != first])
    wait_for("the second owner", lambda: f"announcing {ip}" in sl.speakers[second].tail())
    assert sl.arp_replies(ip) == {sl.mac(second)}
    # Drain: the node withdraws; the last one takes over.
    drained = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbctl",
            "drain",
            sl.node_name(second),
            f"--kubeconfig={sl.kubeconfig}",
        ],
        capture_output=True,
        text=True,
    )
    assert drained.returncode == 0, drained.stderr
    third = next(h for h in sl.nodes if h not in (first, second))
    wait_for("the third owner", lambda: f"announcing {ip}" in sl.speakers[third].tail())
    assert sl.arp_replies(ip) == {sl.mac(third)}


def test_an_address_outside_every_pool_is_never_answered(speaker_lan: Build) -> None:
    sl = speaker_lan(2)
    sl.start_all()
    stray = sl.ip4(99)  # on the LAN, but in no pool
    sl.lb_service("stray", [stray])
    sl.lb_service("marker", [sl.ip4(203)])
    wait_for("the marker address", lambda: sl.arp_replies(sl.ip4(203), 1))
    assert sl.arp_replies(stray) == set()


def test_shared_addresses_have_one_owner(speaker_lan: Build) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(204)
    sl.lb_service("a", [ip])
    sl.lb_service("b", [ip])
    owner = sl.expected_owner(ip)
    assert wait_for("an answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    assert sl.arp_replies(ip, 3) == {sl.mac(owner)}
