"""Real speakers in node namespaces, a real API server, a client namespace: what the LAN sees."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kube_helpers import events, wait_for
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
from scapy.layers.l2 import ARP, Ether
from speaker_helpers import SpeakerLan

Build = Callable[..., SpeakerLan]


def garp_macs(packets: list, ip: str) -> dict[int, set[str]]:  # type: ignore[type-arg]
    """Gratuitous ARP for ``ip`` by opcode: {1: request senders, 2: reply senders}."""
    out: dict[int, set[str]] = {1: set(), 2: set()}
    for p in gratuitous(packets, ip):
        out[p[ARP].op].add(p[Ether].src)
    return out


def gratuitous(packets: list[Any], ip: str) -> list[Any]:
    return [p for p in packets if ARP in p and p[ARP].psrc == ip == p[ARP].pdst]


def garp_replies(packets: list[Any], ip: str) -> int:
    """How many gratuitous ARP replies for ``ip``: one per round."""
    return sum(1 for p in gratuitous(packets, ip) if p[ARP].op == 2)


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
        wait_for("two gratuitous rounds captured", lambda: garp_replies(cap.so_far(), ip) >= 2)
    garp = garp_macs(cap.packets(), ip)
    assert garp == {1: {sl.mac(owner)}, 2: {sl.mac(owner)}}
    assert sl.arp_replies(ip) == {sl.mac(owner)}
    # Visible: an Event names the node and interface, and the owner's metrics say so.
    wait_for(
        "the Announcing event",
        lambda: [
            e
            for e in events(sl.core, sl.namespace, "web")
            if e[1] == "Announcing" and f"from node {sl.node_name(owner)} on interface eth0" in e[2]
        ],
    )
    text = sl.lan.run(owner, ["curl", "-s", "http://127.0.0.1:7473/metrics"]).stdout
    assert f'lbctl_speaker_announced{{ip="{ip}",service="{sl.namespace}/web"}} 1.0' in text
    assert 'lbctl_speaker_gratuitous_sent_total{family="IPv4"}' in text
    assert 'lbctl_speaker_replies_sent_total{family="IPv4"}' in text


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
    heir_mac = sl.mac(heir)
    with sl.lan.capture("client", "arp") as cap:
        sl.kill(owner)
        wait_for(
            "the heir's announcement",
            lambda: f"announcing {ip}" in sl.speakers[heir].tail(),
            timeout=15,
        )
        wait_for(
            "the heir's gratuitous ARP captured", lambda: heir_mac in garp_macs(cap.so_far(), ip)[1]
        )
    assert heir_mac in garp_macs(cap.packets(), ip)[1]
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


def test_a_service_of_another_load_balancer_class_is_never_announced(speaker_lan: Build) -> None:
    sl = speaker_lan(2)
    sl.start_all()
    theirs, ours = sl.ip4(216), sl.ip4(217)
    # Another implementation wrote this status; the address is even inside our pool.
    sl.lb_service("theirs", [theirs], loadBalancerClass="example.com/other")
    sl.lb_service("ours", [ours], loadBalancerClass="lbctl.io/l2")
    owner = sl.expected_owner(ours)
    assert wait_for("ours answered", lambda: sl.arp_replies(ours, 1)) == {sl.mac(owner)}
    assert sl.arp_replies(theirs, 3) == set()  # seen before ours (one informer, in order)


def endpoint_slice(
    sl: SpeakerLan, service: str, hosts: list[str], conditions: dict[str, bool] | None = None
) -> dict[str, object]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [str(sl.lan.host(h).ipv4)],
                "conditions": conditions or {"ready": True},
                "nodeName": sl.node_name(h),
            }
            for h in hosts
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def test_local_policy_follows_v1_endpoint_slices_including_serving_terminating_endpoints(
    speaker_lan: Build,
) -> None:
    from kubernetes import client

    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(205)
    discovery = client.DiscoveryV1Api(sl.core.api_client)

    def put(hosts: list[str], conditions: dict[str, bool] | None = None) -> None:
        body = endpoint_slice(sl, "local", hosts, conditions)
        discovery.replace_namespaced_endpoint_slice("local-1", sl.namespace, body)

    # Pick an endpoint node that is not the owner by hash, so only the policy can explain it.
    by_hash = sl.expected_owner(ip)
    home = next(h for h in sl.nodes if h != by_hash)
    discovery.create_namespaced_endpoint_slice(sl.namespace, endpoint_slice(sl, "local", [home]))
    sl.lb_service("local", [ip], externalTrafficPolicy="Local")
    assert wait_for("an answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(home)}
    moved = next(h for h in sl.nodes if h not in (home,))
    put([moved])
    wait_for("the move", lambda: sl.arp_replies(ip, 1) == {sl.mac(moved)}, timeout=15)
    # Terminating but still serving: kube-proxy still forwards there, so the node stays.
    # A marker Service whose only endpoint is on `moved`, created after the change, shows
    # when that speaker has seen it (one informer, in order).
    marker = sl.ip4(215)
    sl.lb_service("marker", [marker], externalTrafficPolicy="Local")
    put([moved], {"ready": False, "serving": True, "terminating": True})
    discovery.create_namespaced_endpoint_slice(sl.namespace, endpoint_slice(sl, "marker", [moved]))
    wait_for("the marker", lambda: sl.arp_replies(marker, 1) == {sl.mac(moved)}, timeout=15)
    assert sl.arp_replies(ip, 3) == {sl.mac(moved)}
    # No longer serving: the node has nothing to offer; with nowhere else, nobody answers.
    put([moved], {"ready": False, "serving": False, "terminating": True})
    wait_for("the withdrawal", lambda: sl.arp_replies(ip, 1) == set(), timeout=15)
    put([home])
    wait_for("the return", lambda: sl.arp_replies(ip, 1) == {sl.mac(home)}, timeout=15)


def test_node_selector_and_exclude_label_are_obeyed(speaker_lan: Build) -> None:
    labels = {
        "node1": {"lb": "yes"},
        "node2": {"lb": "yes", "node.kubernetes.io/exclude-from-external-load-balancers": ""},
        "node3": {},
    }
    sl = speaker_lan(3, labels=labels)
    from kube_helpers import put_config

    put_config(sl.core, sl.namespace, sl.pool(", nodeSelector: {matchLabels: {lb: 'yes'}}"))
    sl.start_all()
    ips = [sl.ip4(206 + i) for i in range(6)]
    for i, ip in enumerate(ips):
        sl.lb_service(f"s{i}", [ip])
    for ip in ips:  # node2 is excluded by label, node3 by the selector: node1 answers all
        assert wait_for(f"{ip}", lambda ip=ip: sl.arp_replies(ip, 1)) == {sl.mac("node1")}


def test_random_and_malformed_frames_leave_the_speaker_answering(speaker_lan: Build) -> None:
    sl = speaker_lan(2)
    sl.start_all()
    ip = sl.ip4(212)
    owner = sl.expected_owner(ip)
    other = sl.ip4(213)  # a pool address no Service holds
    sl.lb_service("web", [ip])
    assert wait_for("an answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    fuzz = f"""
import random
from scapy.all import ARP, Ether, IPv6, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, Raw, fuzz, sendp
random.seed(7)
frames = []
for _ in range(300):
    frames.append(Ether(dst="ff:ff:ff:ff:ff:ff") / fuzz(ARP()))
    frames.append(Ether(dst="ff:ff:ff:ff:ff:ff") / fuzz(ARP(op=1, pdst="{ip}")))
    frames.append(Ether(dst="33:33:ff:00:00:01") / IPv6(dst="ff02::1:ff00:1") / fuzz(ICMPv6ND_NS()))
    raw = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0806) / ARP(op=1, pdst="{ip}"))
    cut = raw[:random.randint(14, len(raw))]
    frames.append(Ether(cut + bytes(random.randrange(256) for _ in range(8))))
# Requests from spoofed senders for an address nobody announces:
frames += [Ether(dst="ff:ff:ff:ff:ff:ff", src="02:99:00:00:00:%02x" % i) /
           ARP(op=1, hwsrc="02:99:00:00:00:%02x" % i, psrc="{sl.ip4(50)}", pdst="{other}")
           for i in range(50)]
sendp(frames, iface="eth0", verbose=False)
"""
    with sl.lan.capture("client", f"arp and arp[6:2] == 2 and src host {other}") as cap:
        sent = sl.lan.run("client", [sys.executable, "-c", fuzz], timeout=120, check=False)
        assert sent.returncode == 0, sent.stderr[-2000:]
    assert cap.packets() == []  # never a reply for an address we do not own
    for host in sl.nodes:
        sl.speakers[host].check_alive()
    assert sl.arp_replies(ip) == {sl.mac(owner)}
    assert sl.check() == []


def status_row(sl: SpeakerLan, name: str) -> str:
    """The line ``lbctl status`` prints for Service ``name``."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbctl",
            "status",
            f"--kubeconfig={sl.kubeconfig}",
            f"--namespace={sl.namespace}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith(f"{sl.namespace}/{name}"))


def test_lbctl_status_names_the_announcing_node(speaker_lan: Build) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(214)
    sl.lb_service("web", [ip])
    owner = sl.expected_owner(ip)
    wait_for("an answer", lambda: sl.arp_replies(ip, 1))
    row = status_row(sl, "web")
    assert ip in row and sl.node_name(owner) in row
    sl.kill(owner)
    heir = sl.expected_owner(ip, [h for h in sl.nodes if h != owner])
    wait_for(
        "status to follow the failover",
        lambda: sl.node_name(heir) in status_row(sl, "web"),
        timeout=15,
        interval=0.5,
    )


def test_a_speaker_cut_off_from_the_api_stops_answering_and_another_takes_over(
    speaker_lan: Build,
) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(215)
    owner = sl.expected_owner(ip)
    sl.lb_service("web", [ip])
    assert wait_for("the owner", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    port = sl.kubeconfig_port()
    block = [
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        str(sl.lan.plan.gateway4),
        "--dport",
        str(port),
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]
    sl.lan.run(owner, ["iptables", "-I", *block])  # the LAN still works, the API does not
    heir = sl.expected_owner(ip, [h for h in sl.nodes if h != owner])
    # Once its Lease has expired the owner is silent and the heir alone answers.
    wait_for("the heir alone", lambda: sl.arp_replies(ip, 2) == {sl.mac(heir)}, timeout=20)
    sl.lan.run(owner, ["iptables", "-D", *block])
    wait_for(
        "one owner again after healing",
        lambda: sl.arp_replies(ip, 2) == {sl.mac(owner)},
        timeout=20,
    )
    wait_for("lbctl check clean", lambda: sl.check() == [])


def test_link_changes_are_followed(speaker_lan: Build) -> None:
    sl = speaker_lan(2)
    sl.start_all("--lease-duration=4", "--renew-period=0.5")  # longer than TCP's retransmits
    ip = sl.ip4(216)
    owner = sl.expected_owner(ip)
    sl.lb_service("web", [ip])
    assert wait_for("the owner", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}

    def lines(end: str) -> int:
        return sum(
            1
            for line in sl.speakers[owner].tail(10_000).splitlines()
            if f"announcing {ip} " in line and line.endswith(end)
        )

    sl.lan.run(owner, ["ip", "link", "set", "eth0", "down"])
    # Nothing left to announce on: it leaves the election rather than hold the address.
    wait_for(
        "the link going down to be seen", lambda: "withdrawing" in sl.speakers[owner].tail(10_000)
    )
    sl.lan.run(owner, ["ip", "link", "set", "eth0", "up"])
    wait_for("the link coming back to be seen", lambda: lines("on eth0") == 2, timeout=20)
    wait_for("one owner again", lambda: sl.arp_replies(ip, 2) == {sl.mac(owner)}, timeout=20)


def test_a_node_cut_off_from_the_lan_but_not_the_api_gives_its_addresses_up(
    speaker_lan: Build,
) -> None:
    sl = speaker_lan(3)
    sl.management_path("node3")  # before the speakers start: all their API traffic goes there
    sl.start_all()
    ip = next(sl.ip4(n) for n in range(200, 221) if sl.expected_owner(sl.ip4(n)) == "node3")
    heir = sl.expected_owner(ip, ["node1", "node2"])
    sl.lb_service("web", [ip])
    assert wait_for("node3 to answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac("node3")}

    sl.lan.run("node3", ["ip", "link", "set", "eth0", "down"])
    # Its speaker lives and reaches the API: it withdraws its Lease, so the others need not
    # wait for it to expire.
    wait_for("node3 to withdraw", lambda: "node3" not in sl.lease_holders(), timeout=5)
    wait_for("the heir alone", lambda: sl.arp_replies(ip, 2) == {sl.mac(heir)}, timeout=10)
    assert sl.speakers["node3"].alive()

    sl.lan.run("node3", ["ip", "link", "set", "eth0", "up"])
    wait_for("node3 back in the election", lambda: "node3" in sl.lease_holders(), timeout=10)
    wait_for("one owner again", lambda: sl.arp_replies(ip, 2) == {sl.mac("node3")}, timeout=20)
    assert sl.check() == []


def test_net_raw_is_the_only_capability_needed(speaker_lan: Build) -> None:
    sl = speaker_lan(2)
    # As the DaemonSet runs it: every capability dropped but CAP_NET_RAW.
    only_net_raw = ("setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all,+net_raw")
    sl.start_all(wrapper=only_net_raw)
    for proc in sl.speakers.values():
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert "CapEff:\t0000000000002000" in status  # bit 13: CAP_NET_RAW, nothing else
    ip, ip6 = sl.ip4(217), sl.ip6(0x217)
    owner, owner6 = sl.expected_owner(ip), sl.expected_owner(ip6)
    sl.lb_service("web", [ip])
    sl.lb_service("web6", [ip6], ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
    assert wait_for("an IPv4 answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    wait_for("the IPv6 announcement", lambda: f"announcing {ip6}" in sl.speakers[owner6].tail())
    sl.lan.run("client", ["ping", "-6", "-c", "1", "-W", "1", ip6], check=False)
    neigh = sl.lan.run("client", ["ip", "-6", "neigh", "show", ip6]).stdout
    assert f"lladdr {sl.mac(owner6)}" in neigh
