"""A joining speaker takes over with care: which addresses it must leave alone for a moment."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl import ipam, ownership

A, B, C = (ipaddress.ip_address(f"198.51.100.{n}") for n in (200, 201, 202))


@pytest.mark.parametrize(
    ("owners", "without_me", "expected"),
    [
        pytest.param({A: "node3"}, {A: "node1"}, {A}, id="won from a live node: held back"),
        pytest.param({A: "node3"}, {A: None}, set(), id="nobody held it: take it at once"),
        pytest.param({A: "node3"}, {}, set(), id="no election without us: take it at once"),
        pytest.param({A: "node1"}, {A: "node1"}, set(), id="not ours: nothing to hold"),
        pytest.param(
            {A: "node3", B: "node3", C: "node2"},
            {A: "node1", B: None, C: "node2"},
            {A},
            id="only what another node holds",
        ),
    ],
)
def test_a_joining_node_holds_back_only_what_another_node_announces(
    owners: dict[ipam.IP, str | None], without_me: dict[ipam.IP, str | None], expected: set[ipam.IP]
) -> None:
    assert ownership.taken_from_others(owners, without_me, "node3") == expected
