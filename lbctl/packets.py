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
from collections.abc import Collection
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
    NOT_HEARTBEAT = "not a speaker advertisement"
    BAD_HEARTBEAT = "malformed speaker advertisement"


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


# --- address conflicts (RFC 5227, RFC 4862 §5.4) ---------------------------------------------


def arp_probe(mac: bytes, ip: ipaddress.IPv4Address) -> bytes:
    """RFC 5227 §2.1.1 probe: "who has ``ip``?" from sender 0.0.0.0, so no cache learns us."""
    return arp(1, eth_dst=BROADCAST, sha=mac, spa=ipaddress.IPv4Address(0), tha=ZERO_MAC, tpa=ip)


def dad_solicitation(mac: bytes, ip: ipaddress.IPv6Address) -> bytes:
    """RFC 4862 §5.4.2 Duplicate Address Detection: a Neighbor Solicitation for ``ip`` from the
    unspecified address to its solicited-node group, with no Source Link-Layer option."""
    src, dst = ipaddress.IPv6Address(0), solicited_node(ip)
    body = struct.pack("!BBHI16s", NS, 0, 0, 0, ip.packed)
    csum = icmpv6_checksum(src, dst, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    ip6 = _IP6.pack(6 << 28, len(body), ICMPV6, 255, src.packed, dst.packed)
    return _ETH.pack(multicast_mac(dst), mac, ETH_P_IPV6) + ip6 + body


@dataclass(frozen=True)
class Claim:
    """A host said it uses ``ip`` (or, probing, that it wants it), from ``mac``."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    mac: bytes
    probe: bool  # an RFC 5227 probe / DAD solicitation: the host wants the address, not has it


def answer(
    request: ArpRequest | NeighborSolicitation,
    *,
    owned_on: Collection[int] | None,
    link_index: int,
    mac: bytes,
    link_local: ipaddress.IPv6Address | None = None,
) -> bytes | Drop:
    """The reply to ``request``, asked on link ``link_index`` whose MAC is ``mac``; or why none.

    ``owned_on``: the indexes of the links we announce ``request.target_ip`` on, None when we do
    not announce it (``NOT_OURS``); asked on another link: ``WRONG_INTERFACE``. An IPv6 answer
    comes from ``link_local`` (the asking link's fe80:: address) when it has one.
    """
    if owned_on is None:
        return Drop.NOT_OURS
    if link_index not in owned_on:
        return Drop.WRONG_INTERFACE
    if isinstance(request, ArpRequest):
        return arp_reply(mac, request)
    return na_reply(mac, request, link_local)


def parse_claim(frame: bytes) -> Claim | None:
    """Whether ``frame`` claims an address: any ARP whose sender IP is set (RFC 5227 §2.1.1:
    a reply, a request or an announcement); an ARP probe (sender 0.0.0.0) for its target; a
    Neighbor Advertisement for its target; a DAD Neighbor Solicitation for its target.

    Untrusted bytes: anything malformed is ``None``, never an exception.
    """
    if len(frame) < _ETH.size:
        return None
    _, eth_src, ethertype = _ETH.unpack_from(frame)
    if ethertype == ETH_P_ARP:
        if len(frame) < _ETH.size + _ARP.size:
            return None
        htype, ptype, hlen, plen, op, sha, spa, _, tpa = _ARP.unpack_from(frame, _ETH.size)
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4) or op not in (1, 2):
            return None
        if _multicast_or_zero(sha):
            return None
        if spa == b"\x00" * 4:
            return Claim(ipaddress.IPv4Address(tpa), sha, probe=True) if op == 1 else None
        return Claim(ipaddress.IPv4Address(spa), sha, probe=False)
    if ethertype != ETH_P_IPV6 or len(frame) < _ETH.size + _IP6.size + 24:
        return None
    vtf, length, next_header, hop_limit, src, dst = _IP6.unpack_from(frame, _ETH.size)
    start = _ETH.size + _IP6.size
    body = frame[start : start + length]
    if vtf >> 28 != 6 or next_header != ICMPV6 or hop_limit != 255 or len(body) != length:
        return None
    if len(body) < 24 or body[0] not in (NS, NA) or body[1] != 0:
        return None
    source = ipaddress.IPv6Address(src)
    if icmpv6_checksum(source, ipaddress.IPv6Address(dst), body) != 0:
        return None
    target = ipaddress.IPv6Address(body[8:24])
    if target.is_multicast:
        return None
    if body[0] == NS:
        # Only DAD (from ::) is a claim; an ordinary solicitation is a question.
        return Claim(target, eth_src, probe=True) if source.is_unspecified else None
    mac = eth_src
    offset = 24
    while offset + 2 <= len(body) and body[offset + 1]:
        kind, units = body[offset], body[offset + 1]
        if offset + units * 8 > len(body):
            return None
        if kind == 2 and units == 1:
            mac = body[offset + 2 : offset + 8]
        offset += units * 8
    if _multicast_or_zero(mac):
        return None
    return Claim(target, mac, probe=False)


# --- speaker advertisements: the fast liveness signal ----------------------------------------

HEARTBEAT_ETHERTYPE = 0x88B5  # IEEE 802 Local Experimental EtherType 1: stays on the segment
_HB_MAGIC = b"LBHB"
_HB = struct.Struct("!4sBBHII")  # magic, version, flags, interval ms, incarnation, sequence
MAX_ACCUSED = 32  # a speaker that misses more peers than this is more likely the broken one


@dataclass(frozen=True)
class Heartbeat:
    """One speaker's advertisement on a link (VRRPv3-like semantics, RFC 5798 §5.2).

    ``node`` is the sender's node name; ``incarnation`` a random number per speaker start;
    ``interval_ms`` its advertisement interval (the receiver's down interval derives from it);
    ``accused`` the peers the sender currently hears no advertisement from; ``yielding`` that
    the sender holds itself out of the election (flag bit 0, VRRP's priority 0). On the wire, after
    the Ethernet header: ``_HB``, then the node name and the accused names, each as one length
    byte and UTF-8, the accused preceded by their count.
    """

    node: str
    incarnation: int
    seq: int
    interval_ms: int
    accused: frozenset[str] = frozenset()
    yielding: bool = False


def _name(text: str) -> bytes:
    data = text.encode()
    if not 0 < len(data) <= 253:
        raise ValueError(f"node name of {len(data)} bytes: 1 to 253 expected")
    return bytes([len(data)]) + data


def build_heartbeat(mac: bytes, beat: Heartbeat) -> bytes:
    """A broadcast frame carrying ``beat``; at most :data:`MAX_ACCUSED` accused names.

    Raises ValueError for a node name that is empty or longer than 253 bytes.
    """
    accused = sorted(beat.accused)[:MAX_ACCUSED]
    flags = 1 if beat.yielding else 0
    body = _HB.pack(_HB_MAGIC, 1, flags, beat.interval_ms, beat.incarnation, beat.seq)
    body += _name(beat.node) + bytes([len(accused)]) + b"".join(_name(n) for n in accused)
    return _pad(_ETH.pack(BROADCAST, mac, HEARTBEAT_ETHERTYPE) + body)


def _read_name(frame: bytes, offset: int) -> tuple[str | Drop, int]:
    if offset >= len(frame):
        return Drop.TRUNCATED, offset
    length = frame[offset]
    end = offset + 1 + length
    if end > len(frame):
        return Drop.TRUNCATED, offset
    try:
        text = frame[offset + 1 : end].decode()
    except UnicodeDecodeError:
        return Drop.BAD_HEARTBEAT, offset
    return (text if text else Drop.BAD_HEARTBEAT), end


def parse_heartbeat(frame: bytes) -> Heartbeat | Drop:
    """The advertisement in ``frame``; untrusted bytes give a ``Drop``, never an exception."""
    if len(frame) < _ETH.size + _HB.size:
        return Drop.TRUNCATED
    _, src, ethertype = _ETH.unpack_from(frame)
    if ethertype != HEARTBEAT_ETHERTYPE:
        return Drop.NOT_HEARTBEAT
    magic, version, flags, interval, incarnation, seq = _HB.unpack_from(frame, _ETH.size)
    if magic != _HB_MAGIC or version != 1 or interval == 0 or _multicast_or_zero(src):
        return Drop.BAD_HEARTBEAT
    node, offset = _read_name(frame, _ETH.size + _HB.size)
    if isinstance(node, Drop):
        return node
    if offset >= len(frame):
        return Drop.TRUNCATED
    count, offset = frame[offset], offset + 1
    if count > MAX_ACCUSED:
        return Drop.BAD_HEARTBEAT
    accused = []
    for _ in range(count):
        name, offset = _read_name(frame, offset)
        if isinstance(name, Drop):
            return name
        accused.append(name)
    return Heartbeat(node, incarnation, seq, interval, frozenset(accused), bool(flags & 1))
