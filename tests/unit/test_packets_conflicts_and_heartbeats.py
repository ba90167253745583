"""Conflict-detection frames (RFC 5227 probes, RFC 4862 DAD) and speaker advertisements,
checked against scapy where scapy knows the format; untrusted input never raises."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from lbctl import packets
from lbctl.packets import Claim, Drop, Heartbeat

MAC = "02:1b:00:00:00:0a"
OTHER = "02:99:00:00:00:01"
V4 = ipaddress.IPv4Address("198.51.100.200")
V6 = ipaddress.IPv6Address("2001:db8:1::c8")
M = packets.mac_bytes(MAC)
OM = packets.mac_bytes(OTHER)


def test_an_arp_probe_asks_from_sender_zero_so_no_cache_learns_us() -> None:
    frame = Ether(packets.arp_probe(M, V4))
    assert frame[Ether].dst == "ff:ff:ff:ff:ff:ff" and frame[ARP].op == 1
    assert (frame[ARP].hwsrc, frame[ARP].psrc) == (MAC, "0.0.0.0")
    assert (frame[ARP].hwdst, frame[ARP].pdst) == ("00:00:00:00:00:00", str(V4))


def test_a_dad_solicitation_comes_from_the_unspecified_address_without_a_source_option() -> None:
    frame = Ether(packets.dad_solicitation(M, V6))
    assert frame[IPv6].src == "::" and frame[IPv6].dst == str(packets.solicited_node(V6))
    assert frame[IPv6].hlim == 255 and frame[ICMPv6ND_NS].tgt == str(V6)
    assert frame[Ether].dst == "33:33:ff:00:00:c8"
    again = Ether(bytes(frame))
    del again[ICMPv6ND_NS].cksum  # scapy recomputes: ours must match
    assert Ether(bytes(again))[ICMPv6ND_NS].cksum == frame[ICMPv6ND_NS].cksum
    assert len(frame[ICMPv6ND_NS].payload) == 0  # RFC 4862 §5.4.2: no SLLA option


CLAIMS: list[tuple[str, bytes, Claim | None]] = [
    (
        "an ARP reply says the sender has the address",
        bytes(Ether(src=OTHER) / ARP(op=2, hwsrc=OTHER, psrc=str(V4), pdst="198.51.100.9")),
        Claim(V4, OM, probe=False),
    ),
    (
        "an ARP request also says the sender has its sender address",
        bytes(Ether(src=OTHER) / ARP(op=1, hwsrc=OTHER, psrc=str(V4), pdst="198.51.100.9")),
        Claim(V4, OM, probe=False),
    ),
    (
        "a gratuitous announcement says so too",
        bytes(Ether(src=OTHER) / ARP(op=1, hwsrc=OTHER, psrc=str(V4), pdst=str(V4))),
        Claim(V4, OM, probe=False),
    ),
    (
        "another host's probe says it wants the address",
        bytes(Ether(src=OTHER) / ARP(op=1, hwsrc=OTHER, psrc="0.0.0.0", pdst=str(V4))),
        Claim(V4, OM, probe=True),
    ),
    (
        "a Neighbor Advertisement claims its target, at its Target Link-Layer Address",
        bytes(
            Ether(src="02:00:00:00:00:77")
            / IPv6(src="2001:db8:1::9", dst="ff02::1", hlim=255)
            / ICMPv6ND_NA(tgt=str(V6), O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=OTHER)
        ),
        Claim(V6, OM, probe=False),
    ),
    (
        "a DAD solicitation from :: says a host wants the address",
        bytes(
            Ether(src=OTHER)
            / IPv6(src="::", dst=str(packets.solicited_node(V6)), hlim=255)
            / ICMPv6ND_NS(tgt=str(V6))
        ),
        Claim(V6, OM, probe=True),
    ),
    (
        "an ordinary Neighbor Solicitation is a question, not a claim",
        bytes(
            Ether(src=OTHER)
            / IPv6(src="2001:db8:1::9", dst=str(packets.solicited_node(V6)), hlim=255)
            / ICMPv6ND_NS(tgt=str(V6))
        ),
        None,
    ),
    (
        "an NA that crossed a router (hop limit not 255) is no claim",
        bytes(Ether(src=OTHER) / IPv6(src="2001:db8:1::9", hlim=64) / ICMPv6ND_NA(tgt=str(V6))),
        None,
    ),
    (
        "a claim from a multicast MAC is dropped",
        bytes(Ether(src=OTHER) / ARP(op=2, hwsrc="01:00:5e:00:00:01", psrc=str(V4))),
        None,
    ),
    ("a truncated frame is no claim", bytes(Ether(src=OTHER) / ARP(op=2, psrc=str(V4)))[:30], None),
]


@pytest.mark.parametrize(("says", "frame", "claim"), CLAIMS, ids=[c[0] for c in CLAIMS])
def test_claims(says: str, frame: bytes, claim: Claim | None) -> None:
    assert packets.parse_claim(frame) == claim, says


def test_our_own_announcements_parse_as_claims_by_our_mac() -> None:
    for frame in packets.gratuitous_arp(M, V4):
        assert packets.parse_claim(frame) == Claim(V4, M, probe=False)
    assert packets.parse_claim(packets.unsolicited_na(M, V6)) == Claim(V6, M, probe=False)


@pytest.mark.parametrize("yielding", [False, True])
def test_a_heartbeat_round_trips(yielding: bool) -> None:
    beat = Heartbeat(
        "node-1.example", 0xDEADBEEF, 42, 100, frozenset({"node-2", "node-3"}), yielding
    )
    frame = packets.build_heartbeat(M, beat)
    assert frame[:6] == packets.BROADCAST and frame[6:12] == M
    assert int.from_bytes(frame[12:14], "big") == packets.HEARTBEAT_ETHERTYPE
    assert packets.parse_heartbeat(frame) == beat


def test_a_heartbeat_carries_at_most_max_accused_names() -> None:
    many = frozenset(f"n{i:03}" for i in range(100))
    parsed = packets.parse_heartbeat(packets.build_heartbeat(M, Heartbeat("a", 1, 1, 100, many)))
    assert isinstance(parsed, Heartbeat) and len(parsed.accused) == packets.MAX_ACCUSED


@pytest.mark.parametrize("name", ["", "x" * 254])
def test_a_node_name_the_format_cannot_carry_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="node name"):
        packets.build_heartbeat(M, Heartbeat(name, 1, 1, 100))


GOOD = packets.build_heartbeat(M, Heartbeat("node-1", 7, 1, 100, frozenset({"node-2"})))


@pytest.mark.parametrize(
    ("says", "frame", "why"),
    [
        ("too short", GOOD[:20], Drop.TRUNCATED),
        ("ARP is not an advertisement", packets.arp_probe(M, V4), Drop.NOT_HEARTBEAT),
        ("wrong magic", GOOD[:14] + b"XXXX" + GOOD[18:], Drop.BAD_HEARTBEAT),
        ("unknown version", GOOD[:18] + b"\x02" + GOOD[19:], Drop.BAD_HEARTBEAT),
        ("a zero interval", GOOD[:20] + b"\x00\x00" + GOOD[22:], Drop.BAD_HEARTBEAT),
        ("from a multicast MAC", GOOD[:6] + b"\x01" + GOOD[7:], Drop.BAD_HEARTBEAT),
        ("a name longer than the frame", GOOD[:30] + b"\xff" + GOOD[31:40], Drop.TRUNCATED),
        ("an empty node name", GOOD[:30] + b"\x00" + GOOD[31:], Drop.BAD_HEARTBEAT),
        ("a name that is not UTF-8", GOOD[:31] + b"\xff" + GOOD[32:], Drop.BAD_HEARTBEAT),
    ],
)
def test_heartbeat_drops(says: str, frame: bytes, why: Drop) -> None:
    assert packets.parse_heartbeat(frame) is why, says


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(frame: bytes) -> None:
    packets.parse_claim(frame)
    packets.parse_heartbeat(frame)
    packets.parse_heartbeat(GOOD[:14] + frame)


@given(st.binary(min_size=1, max_size=8), st.integers(min_value=0, max_value=80))
def test_mutated_heartbeats_never_raise(noise: bytes, at: int) -> None:
    packets.parse_heartbeat(GOOD[:at] + noise + GOOD[at + len(noise) :])
