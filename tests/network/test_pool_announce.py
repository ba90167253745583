"""Per-pool announce policies with real speakers, a real API server and a client on the LAN:
who answers ARP for a pool's addresses, on which link, or nobody at all."""

from __future__ import annotations

from collections.abc import Callable

from kube_helpers import ControllerProcess, ingress, put_config, wait_for
from scapy.layers.l2 import ARP
from speaker_helpers import SpeakerLan

Build = Callable[..., SpeakerLan]
GARP = "announce: {garp: {rounds: 3, intervalMs: 1100, refreshSeconds: 5}}\n"


def pools(sl: SpeakerLan, *lines: str) -> str:
    """A config of pools, one per line: ``name: first-last: announce`` (offsets in the LAN)."""
    out = ["pools:"]
    for line in lines:
        name, span, announce = (part.strip() for part in line.split(":", 2))
        first, last = (int(n) for n in span.split("-"))
        out.append(
            f"  - {{name: {name}, addresses: ['{sl.ip4(first)}-{sl.ip4(last)}'], "
            f"announce: {announce}}}"
        )
    return "\n".join(out) + "\n" + GARP


def test_a_pool_announced_from_labelled_nodes_is_answered_by_them_only(
    speaker_lan: Build,
) -> None:
    edge = {"edge": "true"}
    sl = speaker_lan(3, labels={"node1": edge, "node2": edge, "node3": {}})
    put_config(
        sl.core,
        sl.namespace,
        pools(sl, "edge: 200-220: {nodeSelector: {matchLabels: {edge: 'true'}}}"),
    )
    sl.start_all()
    labelled = ["node1", "node2"]
    # An address node3 would win if every node were a candidate: the policy must keep it out.
    ip = next(sl.ip4(n) for n in range(200, 221) if sl.expected_owner(sl.ip4(n)) == "node3")
    owner = sl.expected_owner(ip, labelled)
    heir = next(h for h in labelled if h != owner)
    with sl.lan.capture("client", f"arp and src host {ip}") as cap:
        sl.lb_service("web", [ip])
        assert wait_for("an answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
        sl.kill(owner)
        wait_for("the heir", lambda: sl.arp_replies(ip, 1) == {sl.mac(heir)}, timeout=15)
        assert sl.arp_replies(ip, 2) == {sl.mac(heir)}
    # Every ARP frame from the address (gratuitous and replies) came from a labelled node.
    senders = {p[ARP].hwsrc for p in cap.packets() if ARP in p and p[ARP].psrc == ip}
    assert senders == {sl.mac(owner), sl.mac(heir)}
    assert f"announcing {ip}" not in sl.speakers["node3"].tail(20_000)


def test_a_pool_on_a_second_interface_is_answered_there_and_not_on_eth0(
    speaker_lan: Build,
) -> None:
    sl = speaker_lan(2)
    put_config(
        sl.core,
        sl.namespace,
        pools(sl, "lan: 200-209: true", "side: 210-220: {interfaces: [eth1]}"),
    )
    with sl.second_segment() as eth1:
        sl.start_all()
        side, main = sl.ip4(211), sl.ip4(201)
        side_owner, main_owner = sl.expected_owner(side), sl.expected_owner(main)
        sl.lb_service("side", [side])
        sl.lb_service("main", [main])
        assert wait_for("an answer on eth1", lambda: sl.arp_replies(side, 1, ifname="eth1")) == {
            eth1[side_owner]
        }
        assert wait_for("the main pool on eth0", lambda: sl.arp_replies(main, 1)) == {
            sl.mac(main_owner)
        }
        # The main pool's answer shows the speakers have seen both Services by now.
        assert sl.arp_replies(side, 2) == set()
        assert sl.arp_replies(main, 2, ifname="eth1") == set()
        assert sl.check() == []


def test_a_pool_not_announced_gets_addresses_and_nobody_answers_for_them(
    speaker_lan: Build, run_controller: Callable[..., ControllerProcess]
) -> None:
    sl = speaker_lan(3)
    put_config(
        sl.core,
        sl.namespace,
        pools(sl, "quiet: 200-201: false", "lan: 210-211: true"),
    )
    sl.start_all()
    run_controller()
    spec = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    quiet_svc = {
        "metadata": {"name": "quiet", "annotations": {"lbctl.io/address-pool": "quiet"}},
        "spec": spec,
    }
    marker_svc = {
        "metadata": {"name": "marker", "annotations": {"lbctl.io/address-pool": "lan"}},
        "spec": spec,
    }
    sl.core.create_namespaced_service(sl.namespace, quiet_svc)
    sl.core.create_namespaced_service(sl.namespace, marker_svc)
    quiet = wait_for("the quiet Service's address", lambda: ingress(sl.core, sl.namespace, "quiet"))
    assert quiet == [sl.ip4(200)]
    marker = sl.ip4(210)
    assert wait_for("the marker's answer", lambda: sl.arp_replies(marker, 1)) == {
        sl.mac(sl.expected_owner(marker))
    }
    with sl.lan.capture("client", f"arp and src host {quiet[0]}") as cap:
        assert sl.arp_replies(quiet[0], 3) == set()
    assert cap.packets() == []  # not even a gratuitous ARP
    for host in sl.nodes:
        assert f"announcing {quiet[0]}" not in sl.speakers[host].tail(20_000)
    # An address of a pool that is not announced, with nobody announcing it: not a finding.
    assert sl.check() == []
