"""The lab's address plan: documentation ranges only, never one that overlaps a root route."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lbctl.lab import lan, plan


def nets(*texts: str) -> list[plan.IPNetwork]:
    return [ipaddress.ip_network(t) for t in texts]


@pytest.mark.parametrize(
    ("routes", "requested", "expected"),
    [
        pytest.param(
            nets("192.0.2.0/24", "0.0.0.0/0"),
            None,
            "198.51.100.0/24",
            id="the uplink and the default route leave the first candidate free",
        ),
        pytest.param(
            nets("198.51.100.0/25"),
            None,
            "203.0.113.0/24",
            id="a route inside the first candidate moves us to the second",
        ),
        pytest.param(
            nets("198.51.0.0/16"),
            None,
            "203.0.113.0/24",
            id="a route around the first candidate moves us to the second",
        ),
        pytest.param(
            nets("2001:db8::/32"),
            None,
            "198.51.100.0/24",
            id="routes of the other family do not count",
        ),
        pytest.param([], "203.0.113.0/24", "203.0.113.0/24", id="a free requested range is kept"),
    ],
)
def test_pick_free(routes: list[plan.IPNetwork], requested: str | None, expected: str) -> None:
    assert str(plan.pick_free(plan.IPV4_CANDIDATES, routes, requested)) == expected


def test_a_requested_range_that_overlaps_a_root_route_is_refused() -> None:
    with pytest.raises(plan.PlanError, match=r"refusing 192\.0\.2\.0/24.*192\.0\.2\.0/24"):
        plan.pick_free(plan.IPV4_CANDIDATES, nets("192.0.2.0/24"), "192.0.2.0/24")


def test_no_free_candidate_is_an_error() -> None:
    with pytest.raises(plan.RangesInUse, match="overlaps a root route"):
        plan.pick_free(plan.IPV4_CANDIDATES, nets("198.51.100.0/24", "203.0.113.0/24"))


def test_hosts_are_numbered_from_ten_with_unique_names_and_macs() -> None:
    p = plan.plan_lan(
        "lt1234",
        ["node1", "node2", "client"],
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("2001:db8:100::/64"),
    )
    assert [str(h.ipv4) for h in p.hosts] == ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
    assert [str(h.ipv6) for h in p.hosts] == [
        "2001:db8:100::a",
        "2001:db8:100::b",
        "2001:db8:100::c",
    ]
    assert len({h.mac for h in p.hosts}) == 3
    assert all(len(h.ifname_root) <= 15 for h in p.hosts)
    assert p.bridge == "lt1234br" and str(p.gateway4) == "198.51.100.1"


@pytest.mark.parametrize("names", [["node1", "node1"], ["much-too-long-name"], ["a b"]])
def test_bad_host_names_are_refused(names: list[str]) -> None:
    with pytest.raises(plan.PlanError):
        plan.plan_lan(
            "lt1234",
            names,
            ipaddress.ip_network("198.51.100.0/24"),
            ipaddress.ip_network("2001:db8:100::/64"),
        )


def addrs(*texts: str) -> list[plan.IPAddress]:
    return [ipaddress.ip_address(t) for t in texts]


def test_a_range_holding_an_address_the_machine_needs_is_never_picked() -> None:
    # Seen here: /etc/hosts puts deb.debian.org, pypi.org and proxy.golang.org on 203.0.113.80.
    needed = addrs("203.0.113.80", "10.255.255.53")
    assert str(plan.pick_free(plan.IPV4_CANDIDATES, [], None, needed)) == "198.51.100.0/24"
    with pytest.raises(plan.RangesInUse):  # the other one is taken: wait, never fall back
        plan.pick_free(plan.IPV4_CANDIDATES, nets("198.51.100.0/24"), None, needed)
    with pytest.raises(plan.PlanError, match=r"reaches 203\.0\.113\.80"):
        plan.pick_free(plan.IPV4_CANDIDATES, [], "203.0.113.0/24", needed)


def test_when_every_range_holds_a_needed_address_waiting_would_not_help() -> None:
    needed = addrs("198.51.100.7", "203.0.113.80")
    with pytest.raises(plan.PlanError, match="holds an address") as err:
        plan.pick_free(plan.IPV4_CANDIDATES, [], None, needed)
    assert not isinstance(err.value, plan.RangesInUse)


def test_needed_addresses_come_from_etc_hosts_and_the_resolvers(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n203.0.113.80 deb.debian.org pypi.org\n# 198.51.100.9 x\n"
        "2001:db8:5::1 v6host\nnot-an-address foo\n"
    )
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search lan\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\n")
    got = lan.needed_addresses(hosts, resolv, names=())
    assert [str(a) for a in got] == ["203.0.113.80", "2001:db8:5::1", "10.255.255.53", "fe80::1"]


def record(keeper: plan.Keeper | None) -> plan.LanRecord:
    return plan.LanRecord("lt0001", ("node1",), "198.51.100.0/24", "2001:db8:100::/64", keeper)


RUNNING = {100: 5000}  # pid -> start time of what runs now


@pytest.mark.parametrize(
    ("keeper", "removed"),
    [
        pytest.param(plan.Keeper(100, 5000), False, id="a LAN whose keeper runs is kept"),
        pytest.param(plan.Keeper(200, 5000), True, id="a LAN whose keeper died is removed"),
        pytest.param(
            plan.Keeper(100, 4000),
            True,
            id="a LAN whose keeper's PID now names a newer process is removed",
        ),
        pytest.param(None, False, id="a user's lab, kept by no process, stays until lab down"),
    ],
)
def test_abandoned_lans(keeper: plan.Keeper | None, removed: bool) -> None:
    assert plan.abandoned([record(keeper)], RUNNING.get) == ([record(keeper)] if removed else [])


def test_a_lan_record_plans_the_same_names_it_was_built_with() -> None:
    p = record(None).plan()
    assert (p.bridge, [h.netns for h in p.hosts]) == ("lt0001br", ["lt0001-node1"])
