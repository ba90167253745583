"""Gratuitous timing (rounds > 1 s apart, then refresh), the interface choice and which link
changes count as a lost link, without I/O (netlink messages as plain dicts)."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl import ipam
from lbctl.announce import netlink
from lbctl.config import Announcing, Garp
from lbctl.garp import GarpSchedule
from lbctl.interfaces import Link, advertised_link_lost, links_for, pick, serves_lan

IP = ipaddress.ip_address("198.51.100.200")


def sends(schedule: GarpSchedule[str], until: float, step: float = 0.1) -> list[float]:
    out, t = [], 0.0
    while t <= until:
        if schedule.due(t):
            out.append(round(t, 1))
        t = round(t + step, 1)
    return out


def test_rounds_at_once_then_spaced_then_refresh() -> None:
    s: GarpSchedule[str] = GarpSchedule(Garp(rounds=3, interval_ms=1100, refresh_seconds=10))
    s.take("a", 0.0)
    assert sends(s, 25) == [0.0, 1.1, 2.2, 12.2, 22.2]


def test_no_refresh_when_turned_off() -> None:
    s: GarpSchedule[str] = GarpSchedule(Garp(rounds=2, interval_ms=1100, refresh_seconds=0))
    s.take("a", 0.0)
    assert sends(s, 30) == [0.0, 1.1]


def test_dropping_stops_and_taking_again_restarts_the_rounds() -> None:
    s: GarpSchedule[str] = GarpSchedule(Garp(rounds=3, interval_ms=1100, refresh_seconds=60))
    s.take("a", 0.0)
    assert s.due(0.0) == ["a"]
    s.drop("a")
    assert s.due(5.0) == [] and s.next_time() is None
    s.take("a", 6.0)
    assert s.due(6.0) == ["a"] and s.next_time() == 7.1


def test_a_late_send_does_not_crowd_the_next_one() -> None:
    s: GarpSchedule[str] = GarpSchedule(Garp(rounds=3, interval_ms=1100, refresh_seconds=60))
    s.take("a", 0.0)
    s.due(0.0)
    assert s.due(2.0) == ["a"]  # 0.9 s late
    assert s.next_time() == 3.1  # still more than 1 s after the real send


def link(
    name: str,
    index: int,
    nets: tuple[str, ...] = (),
    up: bool = True,
    default: frozenset[int] = frozenset(),
) -> Link:
    return Link(
        name,
        index,
        f"02:00:00:00:00:{index:02x}",
        up,
        tuple(ipaddress.ip_network(n) for n in nets),
        None,
        default,
    )


LINKS = [
    link("lo", 1, ("127.0.0.0/8",)),
    link("eth0", 2, ("192.0.2.0/24",), default=frozenset({4})),
    link("br0", 3, ("198.51.100.0/24",)),
    link("wlan0", 4, ("198.51.100.0/24",), up=False),
]


def test_the_interface_on_the_address_subnet_wins() -> None:
    assert [x.name for x in pick(IP, LINKS)] == ["br0"]


def test_configured_interfaces_win_over_subnets() -> None:
    assert [x.name for x in pick(IP, LINKS, ["eth0"])] == ["eth0"]


def test_without_a_subnet_the_default_route_interface() -> None:
    assert [x.name for x in pick(ipaddress.ip_address("203.0.113.5"), LINKS)] == ["eth0"]


def test_no_interface_for_a_family_without_route() -> None:
    assert pick(ipaddress.ip_address("2001:db8::5"), LINKS) == []


MGMT_ONLY = [link("lo", 1, ("127.0.0.0/8",)), link("mgmt0", 5, ("10.0.0.0/30",))]


@pytest.mark.parametrize(
    ("ranges", "links", "configured", "serves"),
    [
        (["198.51.100.200-198.51.100.250"], LINKS, [], True),  # br0 is on the subnet
        (["2001:db8::/64"], LINKS, [], False),  # no IPv6 subnet, no IPv6 default route
        (["2001:db8::/64", "203.0.113.0/28"], LINKS, [], True),  # one pool range is enough
        (["198.51.100.200-198.51.100.250"], MGMT_ONLY, [], False),  # the LAN link went away
        (["198.51.100.200-198.51.100.250"], LINKS, ["wlan0"], False),  # configured one is down
        (["198.51.100.200-198.51.100.250"], [], [], False),
    ],
)
def test_a_node_serves_the_lan_only_with_a_link_up_for_some_pool(
    ranges: list[str], links: list[Link], configured: list[str], serves: bool
) -> None:
    how = Announcing(tuple(configured), automatic=not configured)
    assert serves_lan([(ipam.parse_range(r), how) for r in ranges], links) is serves


@pytest.mark.parametrize(
    ("announcing", "names"),
    [
        pytest.param(Announcing(), ["br0"], id="no interface named: the one on the subnet"),
        pytest.param(Announcing(("eth0",), automatic=False), ["eth0"], id="eth0 named: eth0 only"),
        pytest.param(
            Announcing(("eth0",), automatic=True),
            ["eth0", "br0"],
            id="eth0 named by one rule, none by another: eth0 and the subnet's",
        ),
        pytest.param(
            Announcing(("wlan0",), automatic=False), [], id="only a link that is down: none"
        ),
        pytest.param(
            Announcing(("br0",), automatic=True), ["br0"], id="a link chosen twice counts once"
        ),
    ],
)
def test_a_pool_policy_picks_its_interfaces(announcing: Announcing, names: list[str]) -> None:
    assert [x.name for x in links_for(IP, LINKS, announcing)] == names


ETH0_UP, ETH0_DOWN, ETH1_UP = link("eth0", 2), link("eth0", 2, up=False), link("eth1", 3)


@pytest.mark.parametrize(
    ("says", "before", "now", "went_down", "lost"),
    [
        ("a link we advertise on that went down is lost", [ETH0_UP], [ETH0_DOWN], (), True),
        ("a flap faster than our re-read is lost all the same", [ETH0_UP], [ETH0_UP], (2,), True),
        ("a link that stays up is not lost", [ETH0_UP], [ETH0_UP], (), False),
        ("a link that comes back up is not lost", [ETH0_DOWN], [ETH0_UP], (), False),
        ("a link down before and again is not lost twice", [ETH0_DOWN], [ETH0_DOWN], (2,), False),
        ("another link going down is not ours to mind", [ETH0_UP, ETH1_UP], [ETH0_UP], (3,), False),
    ],
)
def test_when_a_link_we_advertise_on_is_lost(
    says: str, before: list[Link], now: list[Link], went_down: tuple[int, ...], lost: bool
) -> None:
    assert advertised_link_lost([ETH0_UP], before, now, went_down) is lost, says


@pytest.mark.parametrize(
    ("says", "msg", "down"),
    [
        ("a link set down", {"event": "RTM_NEWLINK", "index": 2, "flags": 0}, {2}),
        ("a link up but with no carrier",
         {"event": "RTM_NEWLINK", "index": 2, "flags": 1, "IFLA_OPERSTATE": "DOWN"}, {2}),
        ("a link up and running", {"event": "RTM_NEWLINK", "index": 2, "flags": 1,
                                   "IFLA_OPERSTATE": "UP"}, set()),
        ("a link deleted", {"event": "RTM_DELLINK", "index": 2, "flags": 1}, {2}),
        ("an address change says nothing of links", {"event": "RTM_NEWADDR", "index": 2,
                                                     "flags": 0}, set()),
    ],
)  # fmt: skip
def test_which_notifications_show_a_link_down(
    says: str, msg: dict[str, object], down: set[int]
) -> None:
    assert netlink.went_down([msg]) == down, says
