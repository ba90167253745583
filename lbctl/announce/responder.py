"""Raw-socket ARP and NDP answering and gratuitous sending (I/O; needs only CAP_NET_RAW).

No address is added to any interface: requests are read from AF_PACKET sockets and answered
from user space with the MAC of the interface they arrived on. The set of owned addresses is
swapped atomically; an address leaves it, and stops being answered, at once.

Only the answering thread closes a socket it may be reading (``set_owned`` retires sockets, the
thread closes them between two ``select`` calls), and ``close`` stops that thread before it
closes anything: no descriptor is ever closed, or reused by another socket, under a reader.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lbctl import ipam, packets
from lbctl.announce.frames import read_waiting
from lbctl.interfaces import Link

log = logging.getLogger(__name__)

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_MR_MULTICAST = 0
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26  # not exported by Python's socket module

# Classic BPF: IPv6, next header ICMPv6, ICMPv6 type 135 (NS) or 136 (NA, a claim on an
# address: conflict detection); everything else stays in the kernel.
# ldh [12]; jeq 0x86dd; ldb [20]; jeq 58; ldb [54]; jeq 135; jeq 136; ret 65535; ret 0.
_NS_FILTER = [
    (0x28, 0, 0, 12),
    (0x15, 0, 6, 0x86DD),
    (0x30, 0, 0, 20),
    (0x15, 0, 4, 58),
    (0x30, 0, 0, 54),
    (0x15, 1, 0, 135),
    (0x15, 0, 1, 136),
    (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
]


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


Owned = Mapping[ipam.IP, tuple[Link, ...]]
Count = Callable[[str, str], None]  # (counter, label): the speaker turns these into metrics
OnClaim = Callable[[packets.Claim, Link], None]  # a foreign frame claimed a watched address


@dataclass
class _Port:
    """The sockets of one interface."""

    link: Link
    arp: socket.socket
    ns: socket.socket
    mac: bytes
    groups: set[ipaddress.IPv6Address] = field(default_factory=set)
    mld: socket.socket | None = None

    def close(self) -> None:
        for s in (self.arp, self.ns, self.mld):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()


def _packet_socket(ifname: str, proto: int) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    with contextlib.suppress(OSError):  # kernels before 4.20: our own frames come back too
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.bind((ifname, proto))
    sock.setblocking(False)
    return sock


class Responder:
    def __init__(
        self, count: Count = lambda counter, label: None, on_claim: OnClaim | None = None
    ) -> None:
        self._count = count
        self._on_claim = on_claim
        self._owned: Owned = {}
        self._watched: Owned = {}  # owned, and the addresses being probed or in conflict
        self._ports: dict[int, _Port] = {}
        self._retired: list[_Port] = []  # no longer used; the answering thread closes them
        self._lock = threading.Lock()  # ports, retired, closed; held while sending
        self._closed = False
        self._thread: threading.Thread | None = None  # the thread inside ``run``
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)  # a full pipe already wakes the thread

    def _wake(self) -> None:
        """Make ``run`` look again (called under the lock, before the pipe is closed)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # --- ownership ---

    def set_owned(self, owned: Owned, watched: Owned | None = None) -> None:
        """Answer exactly for ``owned`` from now on, each address on its links; report claims
        by other hosts (``on_claim``) on ``watched`` addresses too (default: ``owned``)."""
        owned = {ip: links for ip, links in owned.items() if links}
        watched = {ip: links for ip, links in (watched or owned).items() if links} | owned
        with self._lock:
            if self._closed:
                return
            wanted = {link.index: link for links in watched.values() for link in links}
            for index in list(self._ports):
                port = self._ports[index]
                if index not in wanted or wanted[index].mac != port.link.mac:
                    self._retired.append(port)  # the answering thread may be reading it
                    del self._ports[index]
            for index, link in wanted.items():
                if index not in self._ports:
                    try:
                        self._ports[index] = self._open(link)
                    except OSError as exc:
                        log.error("cannot open raw sockets on %s: %s", link.name, exc)
            self._owned = owned  # one reference swap: readers see old or new, never half
            self._watched = watched
            for index, port in self._ports.items():
                groups = {
                    packets.solicited_node(ip)
                    for ip, links in owned.items()
                    if isinstance(ip, ipaddress.IPv6Address)
                    and any(link.index == index for link in links)
                }
                self._join(port, groups)
            if self._thread is None:  # nobody reads: close what is retired now
                self._close_retired()
            self._wake()

    def _close_retired(self) -> None:
        for port in self._retired:
            port.close()
        self._retired.clear()

    def _open(self, link: Link) -> _Port:
        arp = _packet_socket(link.name, packets.ETH_P_ARP)
        ns = _packet_socket(link.name, packets.ETH_P_IPV6)
        _attach_filter(ns, _NS_FILTER)
        return _Port(link, arp, ns, packets.mac_bytes(link.mac))

    def _join(self, port: _Port, groups: set[ipaddress.IPv6Address]) -> None:
        """Receive Neighbor Solicitations for our IPv6 addresses: their solicited-node groups,
        at the link layer (this socket) and through MLD (so snooping switches forward them)."""
        for group, option in [(g, PACKET_ADD_MEMBERSHIP) for g in groups - port.groups] + [
            (g, PACKET_DROP_MEMBERSHIP) for g in port.groups - groups
        ]:
            mac = packets.multicast_mac(group)
            mreq = struct.pack("iHH8s", port.link.index, PACKET_MR_MULTICAST, 6, mac)
            with contextlib.suppress(OSError):
                port.ns.setsockopt(SOL_PACKET, option, mreq)
            if port.mld is None:
                port.mld = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            ip_option = (
                socket.IPV6_JOIN_GROUP
                if option == PACKET_ADD_MEMBERSHIP
                else socket.IPV6_LEAVE_GROUP
            )
            with contextlib.suppress(OSError):  # IPv6 may be off on this link
                port.mld.setsockopt(
                    socket.IPPROTO_IPV6,
                    ip_option,
                    group.packed + struct.pack("@I", port.link.index),
                )
        port.groups = set(groups)

    # --- sending ---

    def announce(self, ip: ipam.IP, link: Link) -> int:
        """Gratuitous ARP (both forms) or an unsolicited NA for ``ip`` on ``link``."""
        sent = 0
        with self._lock:  # the socket is not closed while we send
            port = self._ports.get(link.index)
            if port is None or self._closed:
                return 0
            if isinstance(ip, ipaddress.IPv4Address):
                frames = packets.gratuitous_arp(port.mac, ip)
            else:
                frames = [packets.unsolicited_na(port.mac, ip, link.link_local)]
            for frame in frames:
                try:
                    port.arp.send(frame)
                    sent += 1
                except OSError as exc:
                    log.warning("gratuitous send on %s: %s", link.name, exc)
        self._count("gratuitous", f"IPv{ip.version}")
        return sent

    def probe(self, ip: ipam.IP, link: Link) -> bool:
        """One RFC 5227 ARP probe or RFC 4862 DAD solicitation for ``ip`` on ``link`` (a
        watched address); whether it went out."""
        with self._lock:
            port = self._ports.get(link.index)
            if port is None or self._closed:
                return False
            if isinstance(ip, ipaddress.IPv4Address):
                frame = packets.arp_probe(port.mac, ip)
            else:
                frame = packets.dad_solicitation(port.mac, ip)
            try:
                port.arp.send(frame)
            except OSError as exc:
                log.warning("probe on %s: %s", link.name, exc)
                return False
        self._count("probes", f"IPv{ip.version}")
        return True

    # --- answering ---

    def alive(self) -> bool:
        """Whether the answering thread runs (advertisements say so to the peers)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, stop: threading.Event) -> threading.Thread:
        """Answer in a thread of our own until ``stop`` is set or ``close`` is called."""
        thread = threading.Thread(target=self.run, args=(stop,), name="responder", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        with self._lock:
            if self._closed or self._thread is not None:
                return
            self._thread = threading.current_thread()
        try:
            self._answer(stop)
        finally:
            with self._lock:
                self._thread = None
                self._close_retired()

    def _answer(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                if self._closed:
                    return
                self._close_retired()
                ports = list(self._ports.values())
                wake = self._wake_r
            socks = {p.arp.fileno(): (p, True) for p in ports}
            socks.update({p.ns.fileno(): (p, False) for p in ports})
            try:
                ready, _, _ = select.select([wake, *socks], [], [], 0.5)
            except (OSError, ValueError) as exc:  # not expected: nothing is closed under us
                log.warning("waiting for frames: %s", exc)
                stop.wait(0.1)
                continue
            for fd in ready:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                port, is_arp = socks[fd]
                self._drain(port, is_arp)

    def _drain(self, port: _Port, is_arp: bool) -> None:
        sock = port.arp if is_arp else port.ns
        for frame in read_waiting(sock):  # bounded: one busy interface cannot starve the others
            try:
                self.handle(port, frame, is_arp)
            except Exception as exc:  # a hostile frame must never stop the responder
                log.warning("frame on %s: %s", port.link.name, exc)

    def handle(self, port: _Port, frame: bytes, is_arp: bool) -> None:
        if self._on_claim is not None:
            claim = packets.parse_claim(frame)
            if claim is not None and claim.mac != port.mac and claim.ip in self._watched:
                self._on_claim(claim, port.link)
        family = "IPv4" if is_arp else "IPv6"
        req = packets.parse_arp(frame) if is_arp else packets.parse_ns(frame)
        if isinstance(req, packets.Drop):
            if req not in (packets.Drop.NOT_REQUEST, packets.Drop.NOT_SOLICITATION):
                # Replies and advertisements fly past all the time (conflict detection reads them)
                self._count("dropped", req.name.lower())
            return
        self._count("requests", family)
        links = self._owned.get(req.target_ip)
        reply = packets.answer(
            req,
            owned_on=None if links is None else {link.index for link in links},
            link_index=port.link.index,
            mac=port.mac,
            link_local=port.link.link_local,
        )
        if isinstance(reply, packets.Drop):
            self._count("dropped", reply.name.lower())
            return
        port.arp.send(reply)
        self._count("replies", family)

    def close(self, timeout: float = 5.0) -> None:
        """Stop answering, stop the answering thread, then close every socket and the pipe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._owned = {}
            self._wake()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():  # never close under a reader: leave it to the process exit
                log.warning("the responder thread did not stop; its sockets stay open")
                return
        with self._lock:
            for port in [*self._ports.values(), *self._retired]:
                port.close()
            self._ports.clear()
            self._retired.clear()
            os.close(self._wake_r)
            os.close(self._wake_w)
