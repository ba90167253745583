"""The host's links, addresses and default routes through netlink, and their changes (I/O)."""

from __future__ import annotations

import ipaddress
import logging
import select
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from pyroute2 import IPRoute

from lbctl.interfaces import Link, Network

log = logging.getLogger(__name__)

IFF_UP = 0x1
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100
RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE = 0x40, 0x400


def read_links() -> list[Link]:
    with IPRoute() as ipr:
        return _links(ipr)


def _links(ipr: IPRoute) -> list[Link]:
    nets: dict[int, list[Network]] = {}
    link_local: dict[int, ipaddress.IPv6Address] = {}
    for msg in ipr.addr("dump"):
        address = msg.get("IFA_ADDRESS") or msg.get("address")
        if not address:
            continue
        iface = ipaddress.ip_interface(f"{address}/{msg['prefixlen']}")
        if iface.version == 6 and iface.ip.is_link_local:
            link_local[msg["index"]] = iface.ip
            continue
        nets.setdefault(msg["index"], []).append(iface.network)
    defaults: dict[int, set[int]] = {}
    for msg in ipr.route("dump"):
        if msg.get("dst_len") == 0 and msg.get("table") in (254, None):
            oif = msg.get("RTA_OIF") or msg.get("oif")
            if oif:
                defaults.setdefault(oif, set()).add(4 if msg["family"] == 2 else 6)
    out = []
    for msg in ipr.link("dump"):
        index = msg["index"]
        out.append(
            Link(
                name=str(msg.get("IFLA_IFNAME") or msg.get("ifname")),
                index=index,
                mac=str(msg.get("IFLA_ADDRESS") or msg.get("address") or ""),
                up=_up(msg),
                networks=tuple(nets.get(index, ())),
                link_local=link_local.get(index),
                default_route=frozenset(defaults.get(index, ())),
            )
        )
    return out


class _Message(Protocol):
    """What we read of a pyroute2 netlink message: its fields and attributes by name."""

    def get(self, key: str) -> object: ...


def _up(msg: _Message) -> bool:
    """A link message (RTM_NEWLINK) says the link is up: administratively and operationally."""
    flags = msg.get("flags")
    return (
        isinstance(flags, int)
        and bool(flags & IFF_UP)
        and msg.get("IFLA_OPERSTATE") in ("UP", "UNKNOWN", None)
    )


def went_down(msgs: Iterable[_Message]) -> frozenset[int]:
    """Indexes of the links that notifications show down or deleted."""
    return frozenset(
        index
        for msg in msgs
        if isinstance(index := msg.get("index"), int)
        and (
            msg.get("event") == "RTM_DELLINK"
            or (msg.get("event") == "RTM_NEWLINK" and not _up(msg))
        )
    )


OnChange = Callable[[list[Link], frozenset[int]], None]


def follow(on_change: OnChange, stop: threading.Event) -> None:
    """Call ``on_change(links, went_down)`` with fresh links whenever links, addresses or
    routes change; ``went_down``: links the notifications since the last call showed down,
    which a flap shorter than our re-read has brought up again by then."""
    while not stop.is_set():
        try:
            _follow(on_change, stop)
        except Exception as exc:  # e.g. a dump interrupted by a flap: never stop following
            log.warning("netlink: %s; reading the links again", exc)
            stop.wait(0.2)


def _follow(on_change: OnChange, stop: threading.Event) -> None:
    with IPRoute() as ipr:
        ipr.bind(
            groups=RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE
        )
        with IPRoute() as reader:
            on_change(_links(reader), frozenset())
            while not stop.is_set():
                ready, _, _ = select.select([ipr], [], [], 0.5)
                if not ready:
                    continue
                down: frozenset[int] = frozenset()
                try:  # drain the notifications, note downs; re-read the whole picture
                    down = went_down(ipr.get())
                except Exception as exc:  # a malformed message must not stop us
                    log.warning("netlink: %s", exc)
                on_change(_links(reader), down)
