"""On which interfaces a node announces an address (pure).

``announce.interfaces`` wins when set. Otherwise the interfaces whose connected subnet holds the
address, so a multi-NIC, bridged or Wi-Fi host answers where the askers are; failing that, the
interface of the default route of the address's family.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lbctl import ipam

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str
    up: bool
    networks: tuple[Network, ...] = ()  # connected subnets of its addresses
    link_local: ipaddress.IPv6Address | None = None
    default_route: frozenset[int] = frozenset()  # families whose default route uses it


def pick(ip: ipam.IP, links: Iterable[Link], configured: Sequence[str] = ()) -> list[Link]:
    """The links to announce ``ip`` on; empty when none fits (then nothing is announced)."""
    usable = [link for link in links if link.up and link.mac and link.name != "lo"]
    if configured:
        return [link for link in usable if link.name in configured]
    on_subnet = [
        link for link in usable if any(ip.version == n.version and ip in n for n in link.networks)
    ]
    if on_subnet:
        return on_subnet
    return [link for link in usable if ip.version in link.default_route]


def serves_lan(
    ranges: Iterable[ipam.Range], links: Iterable[Link], configured: Sequence[str]
) -> bool:
    """Whether this node has a link, up, to announce the addresses of at least one pool range.

    A node without one (cable pulled, NIC down) must not win addresses it cannot announce: its
    speaker withdraws from the election while the API server still reaches it another way.
    """
    links = list(links)
    return any(pick(r.ip(r.first), links, configured) for r in ranges)
