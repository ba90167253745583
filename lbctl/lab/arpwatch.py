"""Who answers ARP for an address, asked again and again: the lab's "never two MACs" check.

``python -m lbctl.lab.arpwatch IP --period 0.2 --duration 30`` (run inside the client's
namespace, root) broadcasts an ARP request for IP every period from ``eth0`` and prints one JSON
line per request: ``{"t": <monotonic send time>, "macs": [the MACs that answered it, in the
order their answers came]}``. Answers count for the request they follow, until the next one.
``conflicts`` and ``answered_by`` read those lines (pure).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import select
import socket
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lbctl import packets
from lbctl.lab import probes

ETH_P_ARP = 0x0806


@dataclass(frozen=True)
class Answers:
    t: float  # when the request went out (monotonic seconds)
    order: tuple[str, ...]  # the MACs that answered, in the order their answers came

    @property
    def macs(self) -> frozenset[str]:
        return frozenset(self.order)


def parse(lines: Iterable[str]) -> list[Answers]:
    return [Answers(float(d["t"]), tuple(d["macs"])) for d in probes.records(lines)]


def conflicts(answers: Sequence[Answers]) -> list[Answers]:
    """Requests answered by two MACs at once: two owners, split brain (pure).

    One exception, the handover itself: the old owner answers, stops, and the new owner, which
    took over while the request still sat in its socket, answers it too. Seen on real nodes: the
    old speaker logged "no longer announcing" 40 ms before the new one logged "announcing",
    yet both answered one request. Such a request is answered first by the owner of the request
    before and last by the owner of the request after (each answered by one MAC alone); any
    other request with two MACs is a conflict.
    """
    found = []
    for i, a in enumerate(answers):
        if len(a.macs) < 2:
            continue
        before = next((b.order for b in reversed(answers[:i]) if b.order), ())
        after = next((b.order for b in answers[i + 1 :] if b.order), ())
        handover = (
            len(a.order) == 2
            and len(set(before)) == 1
            and len(set(after)) == 1
            and a.order == (before[0], after[0])
        )
        if not handover:
            found.append(a)
    return found


def answered_by(answers: Sequence[Answers]) -> list[tuple[str, float, float]]:
    """Runs of requests answered by one same MAC: (mac, first t, last t), in order (pure).

    Requests nobody answered are skipped (a gap, not a change of owner)."""
    runs: list[tuple[str, float, float]] = []
    for a in answers:
        if len(a.macs) != 1:
            continue
        (mac,) = a.macs
        if runs and runs[-1][0] == mac:
            runs[-1] = (mac, runs[-1][1], a.t)
        else:
            runs.append((mac, a.t, a.t))
    return runs


def longest_silence(answers: Sequence[Answers]) -> float:
    """The longest time between two answered requests: how long nobody answered (pure)."""
    times = [a.t for a in answers if a.order]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def run(ip: str, ifname: str, period: float, duration: float) -> None:
    target = ipaddress.IPv4Address(ip)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        mac = sock.getsockname()[4][:6]
        own = ipaddress.IPv4Address(_own_address(ifname))
        request = packets.arp(1, eth_dst=b"\xff" * 6, sha=mac, spa=own, tha=b"\x00" * 6, tpa=target)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            sent = time.monotonic()
            sock.send(request)
            macs: list[str] = []
            until = sent + period
            while (left := until - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                frame = sock.recv(2048)
                if len(frame) < 42:
                    continue
                op = struct.unpack_from("!H", frame, 20)[0]
                sha, spa = frame[22:28], frame[28:32]
                if op == 2 and spa == target.packed and _mac_text(sha) not in macs:
                    macs.append(_mac_text(sha))
            print(json.dumps({"t": sent, "macs": macs}), flush=True)


def _own_address(ifname: str) -> str:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("256s", ifname.encode()[:15])
        return socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR


def main(argv: Sequence[str] | None = None) -> int:
    ap = probes.parser(__doc__, "ip", period=0.2, duration=30)
    ap.add_argument("--interface", default="eth0")
    args = ap.parse_args(argv)
    run(args.ip, args.interface, args.period, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
