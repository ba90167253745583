"""ARP and NDP frames: build announcements and replies, parse requests (pure).

Wire formats per RFC 826 (ARP), RFC 5227 (announcements) and RFC 4861 (Neighbor Discovery).
Hand-written with ``struct`` because this is the responder's hot path: parsing a frame here
costs microseconds, where a scapy dissection costs a hundred times more. The tests check every
frame against scapy as an independent implementation. Parsers take untrusted bytes and return
either a request or a ``Drop`` with a reason from a closed set; they never raise.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ICMPV6 = 58
NS, NA = 135, 136
MIN_FRAME = 60  # Ethernet minimum without FCS

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IP6 = struct.Struct("!IHBB16s16s")


class Drop(enum.Enum):
    """Why a received frame gets no answer."""

    TRUNCATED = "truncated"
    NOT_ARP = "not ARP"
    UNSUPPORTED_ARP = "not Ethernet/IPv4 ARP"
    NOT_REQUEST = "not a request"
    GRATUITOUS = "an announcement, not a question"
    BAD_SENDER = "multicast or zero sender MAC"
    NOT_IPV6 = "not IPv6"
    EXTENSION_HEADERS = "IPv6 extension headers"
    NOT_SOLICITATION = "not a Neighbor Solicitation"
    BAD_HOP_LIMIT = "hop limit is not 255"
    BAD_CHECKSUM = "bad ICMPv6 checksum"
    MULTICAST_TARGET = "multicast target"
    BAD_OPTION = "malformed NDP option"
    NOT_OURS = "an address we do not announce"
    WRONG_INTERFACE = "asked on an interface we do not announce it on"


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return bytes(int(p, 16) for p in parts)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _multicast_or_zero(mac: bytes) -> bool:
    return bool(mac[0] & 1) or mac == ZERO_MAC


def _pad(frame: bytes) -> bytes:
    return frame + b"\x00" * (MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


# --- ARP ---------------------------------------------------------------------------------


def arp(
    op: int,
    *,
    eth_dst: bytes,
    sha: bytes,
    spa: ipaddress.IPv4Address,
    tha: bytes,
    tpa: ipaddress.IPv4Address,
) -> bytes:
    return _pad(
        _ETH.pack(eth_dst, sha, ETH_P_ARP)
        + _ARP.pack(1, 0x0800, 6, 4, op, sha, spa.packed, tha, tpa.packed)
    )


def gratuitous_arp(mac: bytes, ip: ipaddress.IPv4Address) -> list[bytes]:
    """RFC 5227 announcement as a broadcast request, and as a reply for routers that want one."""
    return [
        arp(1, eth_dst=BROADCAST, sha=mac, spa=ip, tha=ZERO_MAC, tpa=ip),
        arp(2, eth_dst=BROADCAST, sha=mac, spa=ip, tha=mac, tpa=ip),
    ]


@dataclass(frozen=True)
class ArpRequest:
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_ip: ipaddress.IPv4Address


def parse_arp(frame: bytes) -> ArpRequest | Drop:
    if len(frame) < _ETH.size + _ARP.size:
        return Drop.TRUNCATED
    ethertype = _ETH.unpack_from(frame)[2]
    if ethertype != ETH_P_ARP:
        return Drop.NOT_ARP
    htype, ptype, hlen, plen, op, sha, spa, _, tpa = _ARP.unpack_from(frame, _ETH.size)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return Drop.UNSUPPORTED_ARP
    if op != 1:
        return Drop.NOT_REQUEST
    if spa == tpa:
        return Drop.GRATUITOUS
    if _multicast_or_zero(sha):
        return Drop.BAD_SENDER
    return ArpRequest(sha, ipaddress.IPv4Address(spa), ipaddress.IPv4Address(tpa))


def arp_reply(mac: bytes, request: ArpRequest) -> bytes:
    """Our answer: ``request.target_ip`` is at ``mac``, sent to the asker alone."""
    return arp(
        2,
        eth_dst=request.sender_mac,
        sha=mac,
        spa=request.target_ip,
        tha=request.sender_mac,
        tpa=request.sender_ip,
    )


# --- NDP ---------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def icmpv6_checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, payload: bytes) -> int:
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(payload), ICMPV6)
    return _checksum(pseudo + payload)


def multicast_mac(ip: ipaddress.IPv6Address) -> bytes:
    return b"\x33\x33" + ip.packed[-4:]


def solicited_node(ip: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The multicast group a Neighbor Solicitation for ``ip`` is sent to (RFC 4291)."""
    return ipaddress.IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + ip.packed[-3:])


def neighbor_advertisement(
    *,
    mac: bytes,
    target: ipaddress.IPv6Address,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    eth_dst: bytes,
    solicited: bool,
) -> bytes:
    """NA with Override set and our MAC as Target Link-Layer Address; Router clear."""
    flags = (0x40000000 if solicited else 0) | 0x20000000
    body = struct.pack("!BBHI16sBB6s", NA, 0, 0, flags, target.packed, 2, 1, mac)
    csum = icmpv6_checksum(src, dst, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    ip6 = _IP6.pack(6 << 28, len(body), ICMPV6, 255, src.packed, dst.packed)
    return _ETH.pack(eth_dst, mac, ETH_P_IPV6) + ip6 + body


def unsolicited_na(
    mac: bytes, target: ipaddress.IPv6Address, src: ipaddress.IPv6Address | None = None
) -> bytes:
    """RFC 4861 7.2.6: to all nodes, Override set, Solicited clear."""
    return neighbor_advertisement(
        mac=mac,
        target=target,
        src=src or target,
        dst=ALL_NODES,
        eth_dst=multicast_mac(ALL_NODES),
        solicited=False,
    )


@dataclass(frozen=True)
class NeighborSolicitation:
    sender_mac: bytes  # the Source Link-Layer Address option, else the Ethernet source
    sender_ip: ipaddress.IPv6Address
    target_ip: ipaddress.IPv6Address


def parse_ns(frame: bytes) -> NeighborSolicitation | Drop:
    if len(frame) < _ETH.size + _IP6.size + 24:
        return Drop.TRUNCATED
    _, eth_src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_IPV6:
        return Drop.NOT_IPV6
    vtf, length, next_header, hop_limit, src, dst = _IP6.unpack_from(frame, _ETH.size)
    if vtf >> 28 != 6:
        return Drop.NOT_IPV6
    if next_header != ICMPV6:
        return Drop.EXTENSION_HEADERS
    start = _ETH.size + _IP6.size
    body = frame[start : start + length]
    if len(body) < 24 or len(body) != length:
        return Drop.TRUNCATED
    if body[0] != NS or body[1] != 0:
        return Drop.NOT_SOLICITATION
    if hop_limit != 255:
        return Drop.BAD_HOP_LIMIT
    source, dest = ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst)
    if icmpv6_checksum(source, dest, body) != 0:
        return Drop.BAD_CHECKSUM
    target = ipaddress.IPv6Address(body[8:24])
    if target.is_multicast:
        return Drop.MULTICAST_TARGET
    sender_mac = eth_src
    offset = 24
    while offset < len(body):
        if offset + 2 > len(body) or body[offset + 1] == 0:
            return Drop.BAD_OPTION
        kind, units = body[offset], body[offset + 1]
        end = offset + units * 8
        if end > len(body):
            return Drop.BAD_OPTION
        if kind == 1 and units == 1:
            sender_mac = body[offset + 2 : offset + 8]
        offset = end
    if _multicast_or_zero(sender_mac):
        return Drop.BAD_SENDER
    return NeighborSolicitation(sender_mac, source, target)


def na_reply(
    mac: bytes, request: NeighborSolicitation, src: ipaddress.IPv6Address | None = None
) -> bytes:
    """Our solicited answer; a DAD probe (from ::) is answered to all nodes, unsolicited."""
    if request.sender_ip.is_unspecified:
        return unsolicited_na(mac, request.target_ip, src)
    return neighbor_advertisement(
        mac=mac,
        target=request.target_ip,
        src=src or request.target_ip,
        dst=request.sender_ip,
        eth_dst=request.sender_mac,
        solicited=True,
    )
