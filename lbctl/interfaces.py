"""On which interfaces a node announces an address (pure).

The interfaces a pool's announce policy names (``config.Announcing``; else the global
``announce.interfaces``) win when set. Otherwise the interfaces whose connected subnet holds the
address, so a multi-NIC, bridged or Wi-Fi host answers where the askers are; failing that, the
interface of the default route of the address's family.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from lbctl import ipam
from lbctl.config import Announcing

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


def links_for(ip: ipam.IP, links: Iterable[Link], announcing: Announcing) -> list[Link]:
    """The links to announce ``ip`` on under a policy: the named interfaces that are up, and
    the automatic choice (``pick``) as well when ``announcing.automatic``."""
    links = list(links)
    named = pick(ip, links, announcing.interfaces) if announcing.interfaces else []
    auto = pick(ip, links) if announcing.automatic else []
    return list({link.index: link for link in named + auto}.values())


def serves_lan(wanted: Iterable[tuple[ipam.Range, Announcing]], links: Iterable[Link]) -> bool:
    """Whether this node has a link, up, to announce the addresses of at least one pool range
    (each with how this node announces its pool).

    A node without one (cable pulled, NIC down) must not win addresses it cannot announce: its
    speaker withdraws from the election while the API server still reaches it another way.
    """
    links = list(links)
    return any(links_for(r.ip(r.first), links, how) for r, how in wanted)


def advertised_link_lost(
    advertised: Iterable[Link],
    before: Iterable[Link],
    now: Iterable[Link],
    went_down: Collection[int] = (),
) -> bool:
    """Whether a link we advertise on went down: up ``before`` and down ``now``, or up
    ``before`` and seen down in between (``went_down``: link indexes a notification showed
    down; a flap faster than our re-read of the links is up again by then, but our peers
    still missed us). A link already down ``before`` is not lost again: its loss was counted
    when it went, and counting it twice would lengthen our hold for nothing."""
    was_up = {link.index for link in before if link.up}
    up_throughout = {link.index for link in now if link.up} - set(went_down)
    lost = was_up - up_throughout
    return any(link.index in lost for link in advertised)
