"""Address-conflict detection for the addresses this node owns (pure: time is an argument).

Before the first announcement of an address (not a takeover from another node of the
cluster, which must not wait), probe the LAN (RFC 5227 §2.1.1 ARP probes from
sender 0.0.0.0; for IPv6, RFC 4862 §5.4 Duplicate Address Detection from ``::``); a claim from a
MAC that is not one of the cluster's means another host uses (or wants) it: do not announce.
While announcing, a claim from a foreign MAC is answered by one defensive announcement; a second
within ``defend_interval`` (RFC 5227 §2.4 (b), DEFEND_INTERVAL 10 s) is a conflict: stand down.
A conflicted address is probed again every ``recheck`` seconds and announced again by itself
once nobody answers. The cluster's own MACs (a handover, our own frames) never conflict.

A conflicted address we no longer own (its Service was moved away, ``onConflict: reallocate``)
can be *kept*: still reported in ``conflicts()`` and probed again, so that the controller hands
it to no one while the other host uses it, and forgotten (``RESOLVED``, never ``ANNOUNCE``) once
nobody answers.

The caller feeds owned addresses (``own``), claims seen on the wire (``claim``) and the time;
it gets back the :class:`Action` values to carry out. Shapes: addresses are ``ipaddress``
objects, MACs 6 bytes, times seconds on one monotonic clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from lbctl import ipam


class State(enum.StrEnum):
    """Where one address stands in RFC 5227's probe-then-announce cycle (its value: lowercase
    name)."""

    PROBING = enum.auto()
    ANNOUNCING = enum.auto()
    CONFLICT = enum.auto()


@dataclass(frozen=True)
class Schedule:
    """Probe ``probes`` times, ``interval`` apart, then wait ``wait`` for answers (seconds).

    Defaults are fast (150 ms before the first announcement) because a takeover waits for them;
    ``probes=0`` turns probing off (conflicts are then only found while announcing).
    """

    probes: int = 2
    interval: float = 0.05
    wait: float = 0.1
    recheck: float = 5.0
    defend_interval: float = 10.0


class Do(enum.Enum):
    PROBE = "probe"  # send one probe for the address
    ANNOUNCE = "announce"  # start announcing (gratuitous burst) and answering
    DEFEND = "defend"  # send one gratuitous announcement
    STAND_DOWN = "stand down"  # stop announcing and answering; report the conflict
    RESOLVED = "resolved"  # the other host is gone (an ANNOUNCE follows if we own it)


@dataclass(frozen=True)
class Action:
    do: Do
    ip: ipam.IP
    mac: bytes | None = None  # the foreign MAC, for STAND_DOWN


def _order(ip: ipam.IP) -> tuple[int, int]:
    return ip.version, int(ip)


@dataclass
class _Address:
    state: State
    next_at: float  # when the next probe, or the end of probing, is due
    sent: int = 0  # probes sent in this round
    defended_at: float | None = None
    foreign: bytes | None = None  # the MAC that conflicts (kept while re-probing)
    owned: bool = True  # False: kept only to watch a conflict (never announced)


@dataclass
class Guard:
    """Conflict state of each owned address."""

    schedule: Schedule = field(default_factory=Schedule)
    _addresses: dict[ipam.IP, _Address] = field(default_factory=dict)

    def own(
        self,
        ips: Iterable[ipam.IP],
        now: float,
        *,
        handover: Collection[ipam.IP] = (),
        keep: Callable[[ipam.IP], bool] = lambda ip: False,
    ) -> list[Action]:
        """The addresses owned now: new ones start probing, except those in ``handover`` (taken
        over from another node of the cluster, which announced them until now: a takeover must
        not wait) or when probing is off. Addresses no longer owned are forgotten, except those
        in conflict that ``keep`` names: they are watched until the other host is gone."""
        want = set(ips)
        for ip, a in list(self._addresses.items()):
            if ip in want:
                a.owned = True
            elif a.foreign is not None and keep(ip):
                a.owned = False
            else:
                del self._addresses[ip]
        out = []
        for ip in sorted(want - set(self._addresses), key=_order):
            if self.schedule.probes > 0 and ip not in handover:
                self._addresses[ip] = _Address(State.PROBING, now)
            else:
                self._addresses[ip] = _Address(State.ANNOUNCING, now)
                out.append(Action(Do.ANNOUNCE, ip))
        return out + self.due(now)

    def due(self, now: float) -> list[Action]:
        """What the schedule asks for at ``now``: probes, and probing rounds that ended."""
        out = []
        s = self.schedule
        for ip, a in sorted(self._addresses.items(), key=lambda kv: _order(kv[0])):
            if a.next_at > now:
                continue
            if a.state is State.CONFLICT:
                a.state, a.sent, a.next_at = State.PROBING, 0, now  # look again
            if a.state is not State.PROBING:
                continue
            if a.sent < s.probes:
                a.sent += 1
                a.next_at = now + (s.interval if a.sent < s.probes else s.wait)
                out.append(Action(Do.PROBE, ip))
            else:
                if a.foreign is not None:
                    out.append(Action(Do.RESOLVED, ip, a.foreign))
                if not a.owned:
                    del self._addresses[ip]
                    continue
                a.state, a.foreign, a.defended_at = State.ANNOUNCING, None, None
                out.append(Action(Do.ANNOUNCE, ip))
        return out

    def claim(
        self, ip: ipam.IP, mac: bytes, *, probe: bool, cluster: Collection[bytes], now: float
    ) -> list[Action]:
        """Someone on the LAN claimed ``ip`` from ``mac`` (``probe``: it only asked for it)."""
        a = self._addresses.get(ip)
        if a is None or mac in cluster:
            return []
        s = self.schedule
        if a.state is State.PROBING:
            # RFC 5227 §2.1.1: while probing, another host's probe for it conflicts too.
            return self._stand_down(ip, a, mac, now)
        if a.state is State.CONFLICT:
            if not probe:
                a.foreign, a.next_at = mac, now + s.recheck  # still there: look again later
            return []
        if probe:
            return []  # a host asking for an address we hold gets our answer: that defends it
        if a.defended_at is None or now - a.defended_at > s.defend_interval:
            a.defended_at = now
            return [Action(Do.DEFEND, ip, mac)]
        return self._stand_down(ip, a, mac, now)

    def _stand_down(self, ip: ipam.IP, a: _Address, mac: bytes, now: float) -> list[Action]:
        was_reported = a.foreign is not None
        a.state, a.foreign, a.sent = State.CONFLICT, mac, 0
        a.next_at = now + self.schedule.recheck
        return [] if was_reported else [Action(Do.STAND_DOWN, ip, mac)]

    def announcing(self) -> frozenset[ipam.IP]:
        """The owned addresses we may announce and answer for now."""
        return frozenset(ip for ip, a in self._addresses.items() if a.state is State.ANNOUNCING)

    def conflicts(self) -> dict[ipam.IP, bytes]:
        """Addresses held by another host (still so while they are probed again), and its MAC;
        owned or kept."""
        return {ip: a.foreign for ip, a in self._addresses.items() if a.foreign is not None}

    def kept(self) -> frozenset[ipam.IP]:
        """Conflicted addresses watched though no longer owned (see ``own``)."""
        return frozenset(ip for ip, a in self._addresses.items() if not a.owned)

    def next_change(self) -> float | None:
        """When ``due`` next has something to do."""
        return min(
            (a.next_at for a in self._addresses.values() if a.state is not State.ANNOUNCING),
            default=None,
        )
