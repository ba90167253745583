"""Speaker advertisements on the LAN: send ours, hear the peers' (I/O; needs only CAP_NET_RAW).

One thread: every ``interval`` it broadcasts one :class:`packets.Heartbeat` on each link the
speaker may announce on, and in between it reads the peers' advertisements from AF_PACKET
sockets bound to EtherType 0x88B5 (nothing else reaches them). It sends only while ``alive()``
says the process can answer (the responder thread runs), so a hung responder looks dead. The
thread opens and closes every socket itself: nothing is closed under a reader.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable

from lbctl import packets
from lbctl.announce.frames import read_waiting
from lbctl.interfaces import Link

log = logging.getLogger(__name__)

PACKET_IGNORE_OUTGOING = 23
SOL_PACKET = 263

Heard = Callable[[packets.Heartbeat, bytes, float], None]  # (advertisement, source MAC, time)


class Advertiser:
    """Advertise ``me`` every ``interval`` seconds; report each peer advertisement to
    ``on_heard``; ``state(now)`` is what ours say: the peers we miss, and whether we yield."""

    def __init__(
        self,
        me: str,
        *,
        interval: float,
        on_heard: Heard,
        state: Callable[[float], tuple[frozenset[str], bool]] = lambda now: (frozenset(), False),
        sent: Callable[[float], None] = lambda now: None,
        alive: Callable[[], bool] = lambda: True,
        count: Callable[[str, str], None] = lambda counter, label: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me, self.interval = me, interval
        self._on_heard, self._state, self._alive = on_heard, state, alive
        self._sent = sent
        self._count, self._clock = count, clock
        self.incarnation = secrets.randbits(32)
        self._seq = 0
        self._wanted: dict[int, Link] = {}
        self._lock = threading.Lock()

    def set_links(self, links: Iterable[Link]) -> None:
        """Advertise on exactly these links from the next period on."""
        with self._lock:
            self._wanted = {link.index: link for link in links if link.mac}

    def run(self, stop: threading.Event) -> None:
        socks: dict[int, tuple[Link, socket.socket]] = {}
        due = self._clock()
        try:
            while not stop.is_set():
                self._sync(socks)
                now = self._clock()
                if now >= due:
                    if self._alive() and self._send(socks.values(), now):
                        self._sent(now)
                    due = max(due + self.interval, now)  # no burst to catch up after a stall
                wait = max(0.0, due - self._clock())
                try:
                    ready, _, _ = select.select([s for _, s in socks.values()], [], [], wait)
                except (OSError, ValueError):
                    ready = []
                for sock in ready:
                    self._read(sock)
        finally:
            for _, sock in socks.values():
                with contextlib.suppress(OSError):
                    sock.close()

    def _sync(self, socks: dict[int, tuple[Link, socket.socket]]) -> None:
        with self._lock:
            wanted = dict(self._wanted)
        for index in [i for i, (link, _) in socks.items() if wanted.get(i) != link]:
            with contextlib.suppress(OSError):
                socks.pop(index)[1].close()
        for index, link in wanted.items():
            if index in socks:
                continue
            try:
                sock = socket.socket(
                    socket.AF_PACKET, socket.SOCK_RAW, socket.htons(packets.HEARTBEAT_ETHERTYPE)
                )
                with contextlib.suppress(OSError):  # old kernels: our frames come back too
                    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                sock.bind((link.name, packets.HEARTBEAT_ETHERTYPE))
                sock.setblocking(False)
            except OSError as exc:
                log.error("cannot advertise on %s: %s", link.name, exc)
                continue
            socks[index] = (link, sock)

    def _send(self, ports: Iterable[tuple[Link, socket.socket]], now: float) -> bool:
        """One advertisement on every link; whether at least one went out."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        accused, yielding = self._state(now)
        beat = packets.Heartbeat(
            self.me,
            self.incarnation,
            self._seq,
            max(1, round(self.interval * 1000)),
            accused,
            yielding,
        )
        went = False
        for link, sock in ports:
            try:
                sock.send(packets.build_heartbeat(packets.mac_bytes(link.mac), beat))
                self._count("advertisements", "sent")
                went = True
            except OSError as exc:  # link going down: the next period tries again
                log.debug("advertisement on %s failed: %s", link.name, exc)
        return went

    def _read(self, sock: socket.socket) -> None:
        for frame in read_waiting(sock):  # bounded: the sender side must not starve
            beat = packets.parse_heartbeat(frame)
            if isinstance(beat, packets.Drop):
                self._count("dropped", beat.name.lower())
                continue
            if beat.node != self.me:
                self._count("advertisements", "received")
                self._on_heard(beat, frame[6:12], self._clock())
