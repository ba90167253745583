"""Address plan of the lab LAN: free documentation ranges, host numbering, names (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Documentation ranges only (RFC 5737, RFC 3849): test traffic never reaches a real host.
IPV4_CANDIDATES = ("198.51.100.0/24", "203.0.113.0/24")
IPV6_CANDIDATES = ("2001:db8:100::/64", "2001:db8:200::/64")
MAX_NAME = 8  # interface names are prefix (6) + name: Linux allows 15 characters


class PlanError(ValueError):
    """No safe address range, or a bad host name."""


class RangesInUse(PlanError):
    """Every candidate range overlaps a root route, most likely another LAN's: worth a wait."""


def overlapping(net: IPNetwork, routes: Iterable[IPNetwork]) -> list[IPNetwork]:
    """Routes of the root namespace that ``net`` overlaps; default routes never count."""
    return [r for r in routes if r.version == net.version and r.prefixlen > 0 and net.overlaps(r)]


def holding(net: IPNetwork, needed: Iterable[IPAddress]) -> list[IPAddress]:
    """Addresses this machine needs (its registries, its resolvers) that lie inside ``net``."""
    return [a for a in needed if a.version == net.version and a in net]


def pick_free(
    candidates: Sequence[str],
    routes: Iterable[IPNetwork],
    requested: str | None = None,
    needed: Iterable[IPAddress] = (),
) -> IPNetwork:
    """The requested range, or the first candidate that overlaps no route. Refuse overlaps.

    A range holding an address in ``needed`` is never used: a documentation range can still
    be where this machine reaches something through its default route (here /etc/hosts puts
    the Debian mirror, PyPI and the Go proxy on 203.0.113.80), and a bridge on that range
    would cut the machine off from it.
    """
    routes, needed = list(routes), list(needed)
    if requested is not None:
        net = ipaddress.ip_network(requested)
        clash = overlapping(net, routes)
        if clash:
            raise PlanError(
                f"refusing {net}: it overlaps route(s) {', '.join(map(str, clash))} of the root "
                "namespace; adding it could cut this machine off"
            )
        held = holding(net, needed)
        if held:
            raise PlanError(
                f"refusing {net}: this machine reaches {', '.join(map(str, held))} there "
                "(/etc/hosts or /etc/resolv.conf); a bridge on it would cut that off"
            )
        return net
    usable = [
        ipaddress.ip_network(t) for t in candidates if not holding(ipaddress.ip_network(t), needed)
    ]
    if not usable:
        raise PlanError(
            f"every candidate range ({', '.join(candidates)}) holds an address this machine "
            "needs (/etc/hosts or /etc/resolv.conf)"
        )
    for net in usable:
        if not overlapping(net, routes):
            return net
    raise RangesInUse(f"every usable range ({', '.join(map(str, usable))}) overlaps a root route")


def candidate_gateways() -> list[str]:
    """The gateway (first) address of every candidate range: SANs for the API server cert."""
    return [
        str(ipaddress.ip_network(c).network_address + 1)
        for c in (*IPV4_CANDIDATES, *IPV6_CANDIDATES)
    ]


@dataclass(frozen=True)
class HostPlan:
    name: str
    netns: str
    ifname_root: str
    mac: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address


@dataclass(frozen=True)
class LanPlan:
    prefix: str
    subnet4: ipaddress.IPv4Network
    subnet6: ipaddress.IPv6Network
    hosts: tuple[HostPlan, ...]

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway4(self) -> ipaddress.IPv4Address:
        return self.subnet4.network_address + 1

    @property
    def gateway6(self) -> ipaddress.IPv6Address:
        return self.subnet6.network_address + 1


def plan_lan(prefix: str, names: Sequence[str], subnet4: IPNetwork, subnet6: IPNetwork) -> LanPlan:
    """Hosts get .10, .11, ... in both families and a locally administered MAC."""
    if not (
        isinstance(subnet4, ipaddress.IPv4Network) and isinstance(subnet6, ipaddress.IPv6Network)
    ):
        raise PlanError("need one IPv4 and one IPv6 subnet")
    if len(set(names)) != len(names):
        raise PlanError(f"host names repeat: {list(names)}")
    hosts = []
    for i, name in enumerate(names):
        if not name.isalnum() or len(name) > MAX_NAME:
            raise PlanError(f"host name {name!r}: want 1-{MAX_NAME} letters or digits")
        hosts.append(
            HostPlan(
                name=name,
                netns=f"{prefix}-{name}",
                ifname_root=f"{prefix}{name}",
                mac=f"02:1b:00:00:{(i >> 8) & 0xFF:02x}:{(i + 10) & 0xFF:02x}",
                ipv4=subnet4.network_address + 10 + i,
                ipv6=subnet6.network_address + 10 + i,
            )
        )
    return LanPlan(prefix, subnet4, subnet6, tuple(hosts))


@dataclass(frozen=True)
class Keeper:
    """The process that keeps a LAN up: when it is gone, so should the LAN be.

    ``start`` is the process's start time (field 22 of /proc/PID/stat, in clock ticks since
    boot), so a PID the kernel has given to a new process is not taken for the keeper.
    """

    pid: int
    start: int


@dataclass(frozen=True)
class LanRecord:
    """What a machine-wide record says about one LAN (stored as JSON beside the others).

    ``keeper`` None means kept until someone removes it (a user's ``lbctl lab up``); ``down``
    is the command that removes everything the LAN's owner made (a lab's ``lbctl lab down``,
    with ``down_env``), empty when removing the namespaces and links is all it takes.
    """

    prefix: str
    names: tuple[str, ...]
    subnet4: str
    subnet6: str
    keeper: Keeper | None
    down: tuple[str, ...] = ()
    down_env: tuple[tuple[str, str], ...] = ()

    def plan(self) -> LanPlan:
        net4, net6 = ipaddress.ip_network(self.subnet4), ipaddress.ip_network(self.subnet6)
        return plan_lan(self.prefix, self.names, net4, net6)


def abandoned(
    records: Iterable[LanRecord], start_of: Callable[[int], int | None]
) -> list[LanRecord]:
    """The LANs whose keeper died without removing them (a killed test run or benchmark).

    ``start_of(pid)`` is the start time of the running process ``pid``, None if there is none.
    A LAN with no keeper is never abandoned: only ``lbctl lab down`` removes a user's lab.
    """
    return [r for r in records if r.keeper is not None and start_of(r.keeper.pid) != r.keeper.start]
