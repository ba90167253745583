"""ARP and NDP frames, checked against scapy as an independent implementation; no sockets."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether

from lbctl import packets
from lbctl.packets import Drop

MAC = "02:1b:00:00:00:0a"
ASKER = "02:1b:00:00:00:0c"
V4 = ipaddress.IPv4Address("198.51.100.200")
V6 = ipaddress.IPv6Address("2001:db8:1::c8")


def test_gratuitous_arp_in_both_forms() -> None:
    request, reply = (Ether(f) for f in packets.gratuitous_arp(packets.mac_bytes(MAC), V4))
    for frame, op in ((request, 1), (reply, 2)):
        assert frame[Ether].dst == "ff:ff:ff:ff:ff:ff" and frame[Ether].src == MAC
        assert frame[ARP].op == op and frame[ARP].hwsrc == MAC
        assert frame[ARP].psrc == frame[ARP].pdst == str(V4)  # RFC 5227: sender IP = target IP
        assert len(bytes(frame)) == 60


def test_an_arp_request_is_parsed_and_answered_to_the_asker_alone() -> None:
    asked = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=ASKER)
        / ARP(op=1, hwsrc=ASKER, psrc="198.51.100.12", pdst=str(V4))
    )
    req = packets.parse_arp(asked)
    assert req == packets.ArpRequest(
        packets.mac_bytes(ASKER), ipaddress.IPv4Address("198.51.100.12"), V4
    )
    assert isinstance(req, packets.ArpRequest)
    reply = Ether(packets.arp_reply(packets.mac_bytes(MAC), req))
    assert reply[Ether].dst == ASKER and reply[ARP].op == 2
    assert (reply[ARP].hwsrc, reply[ARP].psrc) == (MAC, str(V4))
    assert (reply[ARP].hwdst, reply[ARP].pdst) == (ASKER, "198.51.100.12")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"", Drop.TRUNCATED),
        (bytes(Ether(src=ASKER) / ARP(op=1, pdst=str(V4)))[:30], Drop.TRUNCATED),
        (bytes(Ether(src=ASKER, type=0x0800) / (b"\x00" * 40)), Drop.NOT_ARP),
        (
            bytes(Ether(src=ASKER) / ARP(op=2, hwsrc=ASKER, psrc="198.51.100.1", pdst=str(V4))),
            Drop.NOT_REQUEST,
        ),
        (
            bytes(Ether(src=ASKER) / ARP(op=1, hwsrc=ASKER, psrc=str(V4), pdst=str(V4))),
            Drop.GRATUITOUS,
        ),
        (
            bytes(
                Ether(src=ASKER)
                / ARP(op=1, hwsrc="ff:ff:ff:ff:ff:ff", psrc="198.51.100.1", pdst=str(V4))
            ),
            Drop.BAD_SENDER,
        ),
        (
            bytes(
                Ether(src=ASKER)
                / ARP(op=1, ptype=0x86DD, plen=4, psrc="198.51.100.1", pdst=str(V4))
            ),
            Drop.UNSUPPORTED_ARP,
        ),
    ],
    ids=[
        "empty",
        "cut short",
        "IPv4 not ARP",
        "a reply",
        "an announcement",
        "broadcast sender",
        "not IPv4 ARP",
    ],
)
def test_arp_drops(frame: bytes, why: Drop) -> None:
    assert packets.parse_arp(frame) is why


def test_unsolicited_na_to_all_nodes_override_set_solicited_clear() -> None:
    frame = Ether(packets.unsolicited_na(packets.mac_bytes(MAC), V6))
    assert frame[Ether].dst == "33:33:00:00:00:01"
    assert frame[IPv6].dst == "ff02::1" and frame[IPv6].hlim == 255
    na = frame[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 0, 1) and na.tgt == str(V6)
    assert frame[ICMPv6NDOptDstLLAddr].lladdr == MAC
    # scapy recomputes the checksum: equal means ours is right.
    rebuilt = frame.copy()
    del rebuilt[ICMPv6ND_NA].cksum
    assert Ether(bytes(rebuilt))[ICMPv6ND_NA].cksum == na.cksum


def ns_frame(**overrides: object) -> bytes:
    src = overrides.pop("src", "2001:db8:1::c")
    hlim = overrides.pop("hlim", 255)
    tgt = overrides.pop("tgt", str(V6))
    return bytes(
        Ether(src=ASKER, dst="33:33:ff:00:00:c8")
        / IPv6(src=src, dst=str(packets.solicited_node(V6)), hlim=hlim)
        / ICMPv6ND_NS(tgt=tgt)
        / ICMPv6NDOptSrcLLAddr(lladdr=ASKER)
    )


def test_a_neighbor_solicitation_is_parsed_and_answered_solicited() -> None:
    req = packets.parse_ns(ns_frame())
    assert isinstance(req, packets.NeighborSolicitation)
    assert (req.sender_mac, str(req.sender_ip), req.target_ip) == (
        packets.mac_bytes(ASKER),
        "2001:db8:1::c",
        V6,
    )
    reply = Ether(packets.na_reply(packets.mac_bytes(MAC), req))
    assert reply[Ether].dst == ASKER and reply[IPv6].dst == "2001:db8:1::c"
    na = reply[ICMPv6ND_NA]
    assert (na.S, na.O, na.tgt) == (1, 1, str(V6))
    assert reply[ICMPv6NDOptDstLLAddr].lladdr == MAC


def test_a_duplicate_address_probe_is_answered_to_all_nodes() -> None:
    req = packets.parse_ns(ns_frame(src="::"))
    assert isinstance(req, packets.NeighborSolicitation)
    reply = Ether(packets.na_reply(packets.mac_bytes(MAC), req))
    assert reply[IPv6].dst == "ff02::1" and reply[ICMPv6ND_NA].S == 0


def test_the_solicited_node_group() -> None:
    assert str(packets.solicited_node(V6)) == "ff02::1:ff00:c8"


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (ns_frame(hlim=64), Drop.BAD_HOP_LIMIT),
        (ns_frame(tgt="ff02::1"), Drop.MULTICAST_TARGET),
        (ns_frame()[:70], Drop.TRUNCATED),
        (ns_frame()[:-1] + bytes([ns_frame()[-1] ^ 0xFF]), Drop.BAD_CHECKSUM),
        (
            bytes(Ether(src=ASKER) / IPv6(dst="ff02::1") / ICMPv6ND_NA(tgt=str(V6))),
            Drop.NOT_SOLICITATION,
        ),
        (bytes(Ether(src=ASKER) / ARP() / (b"\x00" * 40)), Drop.NOT_IPV6),
    ],
    ids=[
        "hop limit",
        "multicast target",
        "cut short",
        "bad checksum",
        "an advertisement",
        "not IPv6",
    ],
)
def test_ns_drops(frame: bytes, why: Drop) -> None:
    assert packets.parse_ns(frame) is why


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(frame: bytes) -> None:
    packets.parse_arp(frame)
    packets.parse_ns(frame)


@given(st.binary(min_size=1, max_size=80), st.integers(0, 85))
def test_mutated_solicitations_never_raise(noise: bytes, at: int) -> None:
    frame = bytearray(ns_frame())
    frame[at : at + len(noise)] = noise
    packets.parse_ns(bytes(frame))
    packets.parse_arp(bytes(frame))
