"""ARP probe run inside the client namespace by bench/speaker.py (raw sockets, needs root).

latency: send ARP requests for TARGET at RATE per second, each from its own sender MAC so the
         reply identifies it; print the reply latencies (ms) and the count lost, as JSON.
watch:   ask for TARGET every INTERVAL for DURATION seconds; print every ARP frame about
         TARGET (replies and gratuitous) as JSON lines: monotonic time and sender MAC.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import threading
import time

from lbctl import packets

SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 263, 1, 1


def open_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(packets.ETH_P_ARP))
    s.bind((ifname, packets.ETH_P_ARP))
    index = socket.if_nametoindex(ifname)
    # Replies go to each request's own sender MAC: accept every destination.
    s.setsockopt(
        SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
    )
    s.settimeout(0.2)
    return s


def request(mac: bytes, sender_ip: str, target: str) -> bytes:
    import ipaddress

    return packets.arp(
        1,
        eth_dst=packets.BROADCAST,
        sha=mac,
        spa=ipaddress.IPv4Address(sender_ip),
        tha=packets.ZERO_MAC,
        tpa=ipaddress.IPv4Address(target),
    )


def about(frame: bytes, target: str) -> tuple[int, bytes, bytes] | None:
    """(op, sender MAC, target MAC) of an ARP frame whose sender IP is ``target``."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op = int.from_bytes(frame[20:22], "big")
    if socket.inet_ntoa(frame[28:32]) != target:
        return None
    return op, frame[22:28], frame[32:38]


def latency(args: argparse.Namespace) -> None:
    s = open_socket(args.ifname)
    sent: dict[bytes, float] = {}
    got: dict[bytes, float] = {}
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                frame = s.recv(2048)
            except TimeoutError:
                continue
            now = time.monotonic()
            a = about(frame, args.target)
            if a and a[0] == 2 and a[2] in sent and a[2] not in got:
                got[a[2]] = now

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    start = time.monotonic()
    for i in range(args.count):
        at = start + i / args.rate
        while (now := time.monotonic()) < at:
            time.sleep(min(0.0005, at - now))
        mac = bytes([0x02, 0xEE, 0, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
        sent[mac] = time.monotonic()
        s.send(request(mac, args.sender_ip, args.target))
    time.sleep(0.5)
    done.set()
    t.join()
    lat = [(got[m] - sent[m]) * 1000 for m in sent if m in got]
    print(
        json.dumps(
            {
                "latencies_ms": lat,
                "lost": len(sent) - len(lat),
                "rate": args.count / (time.monotonic() - start - 0.5),
            }
        )
    )


def watch(args: argparse.Namespace) -> None:
    s = open_socket(args.ifname)
    mac = bytes.fromhex("02ee00ffffff")
    end = time.monotonic() + args.duration
    next_ask = 0.0
    while (now := time.monotonic()) < end:
        if now >= next_ask:
            s.send(request(mac, args.sender_ip, args.target))
            next_ask = now + args.interval
        try:
            s.settimeout(max(0.001, min(args.interval, next_ask - time.monotonic())))
            frame = s.recv(2048)
        except TimeoutError:
            continue
        a = about(frame, args.target)
        if a:
            print(
                json.dumps({"t": time.monotonic(), "op": a[0], "mac": packets.mac_text(a[1])}),
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["latency", "watch"])
    ap.add_argument("--target", required=True)
    ap.add_argument("--sender-ip", required=True)
    ap.add_argument("--ifname", default="eth0")
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--duration", type=float, default=10)
    args = ap.parse_args()
    latency(args) if args.mode == "latency" else watch(args)


if __name__ == "__main__":
    main()
