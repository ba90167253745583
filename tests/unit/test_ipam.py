"""Address ranges and the free-address search: exact, and never proportional to pool size."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbctl import ipam


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("198.51.100.0/30", "198.51.100.0", "198.51.100.3"),
        ("198.51.100.7-198.51.100.9", "198.51.100.7", "198.51.100.9"),
        (" 198.51.100.7 - 198.51.100.9 ", "198.51.100.7", "198.51.100.9"),
        ("198.51.100.7", "198.51.100.7", "198.51.100.7"),
        ("2001:db8::/126", "2001:db8::", "2001:db8::3"),
        ("2001:db8::5-2001:db8::6", "2001:db8::5", "2001:db8::6"),
    ],
)
def test_parse_range(text: str, first: str, last: str) -> None:
    rng = ipam.parse_range(text)
    assert (rng.ip(rng.first), rng.ip(rng.last)) == (
        ipaddress.ip_address(first),
        ipaddress.ip_address(last),
    )


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("198.51.100.0/25", "198.51.100.128/25", False),
        ("198.51.100.0/24", "198.51.100.128/25", True),
        ("198.51.100.5", "198.51.100.5", True),
        ("198.51.100.0/24", "2001:db8::/120", False),
    ],
)
def test_overlaps(a: str, b: str, overlap: bool) -> None:
    assert ipam.parse_range(a).overlaps(ipam.parse_range(b)) is overlap


def test_first_overlap_finds_a_range_nested_after_a_wide_one() -> None:
    ranges = [(ipam.parse_range(t), t) for t in ("10.0.0.0/8", "11.0.0.1", "10.200.0.1")]
    assert ipam.first_overlap(ranges) == ("10.0.0.0/8", "10.200.0.1")


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


@pytest.mark.parametrize(
    ("used", "skip_buggy", "expected"),
    [
        pytest.param([], False, "198.51.100.0", id="an empty pool gives its first address"),
        pytest.param(["198.51.100.0", "198.51.100.1"], False, "198.51.100.2", id="skip a used run"),
        pytest.param(["198.51.100.1"], False, "198.51.100.0", id="a gap before a used address"),
        pytest.param([], True, "198.51.100.1", id="avoid .0"),
        pytest.param(
            [f"198.51.100.{i}" for i in range(1, 255)],
            True,
            "198.51.101.1",
            id="avoid .255 and .0 across a boundary",
        ),
    ],
)
def test_first_free(used: list[str], skip_buggy: bool, expected: str) -> None:
    rng = ipam.parse_range("198.51.100.0/23")
    taken = ipam.UsedSet(v4(u) for u in used)
    skip = (lambda v: ipam.is_buggy(ipaddress.IPv4Address(v))) if skip_buggy else (lambda v: False)
    assert taken.first_free(rng, skip) == v4(expected)


def test_a_full_range_has_nothing_free() -> None:
    rng = ipam.parse_range("198.51.100.4/30")
    taken = ipam.UsedSet(range(rng.first, rng.last + 1))
    assert taken.first_free(rng) is None
    assert taken.count_in(rng) == 4


def test_a_huge_ipv6_range_is_searched_without_enumerating() -> None:
    rng = ipam.parse_range("2001:db8::/32")
    taken = ipam.UsedSet(range(rng.first, rng.first + 10_000))
    assert taken.first_free(rng) == rng.first + 10_000


@given(
    used=st.sets(st.integers(0, 63)),
    bounds=st.tuples(st.integers(0, 63), st.integers(0, 63)).map(sorted),
    skipped=st.sets(st.integers(0, 63), max_size=5),
)
def test_first_free_agrees_with_a_plain_scan(
    used: set[int], bounds: list[int], skipped: set[int]
) -> None:
    rng = ipam.Range(4, bounds[0], bounds[1])
    expected = next(
        (v for v in range(rng.first, rng.last + 1) if v not in used and v not in skipped), None
    )
    assert ipam.UsedSet(used).first_free(rng, skipped.__contains__) == expected


# --- merge and partition ----------------------------------------------------------------


def r(text: str) -> ipam.Range:
    return ipam.parse_range(text)


@pytest.mark.parametrize(
    ("ranges", "merged"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param(["10.0.0.0/28", "10.0.0.16/28"], ["10.0.0.0/27"], id="adjacent ranges join"),
        pytest.param(
            ["10.0.0.5-10.0.0.9", "10.0.0.1-10.0.0.6"], ["10.0.0.1-10.0.0.9"], id="overlaps join"
        ),
        pytest.param(
            ["2001:db8::/127", "10.0.0.9", "10.0.0.1"],
            ["10.0.0.1", "10.0.0.9", "2001:db8::/127"],
            id="gaps stay, IPv4 first, each family ascending",
        ),
    ],
)
def test_merge(ranges: list[str], merged: list[str]) -> None:
    assert [str(x) for x in ipam.merge(r(t) for t in ranges)] == merged


@pytest.mark.parametrize(
    ("holders", "pieces"),
    [
        pytest.param(
            {"a": ["10.0.0.0/29"], "g": ["10.0.0.0/29"]},
            [("10.0.0.0/29", {"a", "g"})],
            id="equal sets: one piece held by both",
        ),
        pytest.param(
            {"a": ["10.0.0.0/28"], "g": ["10.0.0.8-10.0.0.31"]},
            [
                ("10.0.0.0/29", {"a"}),
                ("10.0.0.8/29", {"a", "g"}),
                ("10.0.0.16/28", {"g"}),
            ],
            id="an overlap splits into three",
        ),
        pytest.param(
            {"a": ["10.0.0.1", "10.0.0.3"], "b": ["10.0.0.2"]},
            [("10.0.0.1", {"a"}), ("10.0.0.2", {"b"}), ("10.0.0.3", {"a"})],
            id="interleaved sets stay in address order",
        ),
        pytest.param(
            {"a": ["2001:db8::/64", "10.0.0.0/30"], "b": ["2001:db8::/65"]},
            [
                ("10.0.0.0/30", {"a"}),
                ("2001:db8::/65", {"a", "b"}),
                ("2001:db8:0:0:8000::/65", {"a"}),
            ],
            id="families apart; an IPv6 /64 costs nothing",
        ),
    ],
)
def test_partition(holders: dict[str, list[str]], pieces: list[tuple[str, set[str]]]) -> None:
    got = ipam.partition({k: [r(t) for t in v] for k, v in holders.items()})
    assert [(str(rng), set(keys)) for rng, keys in got] == pieces


@given(
    st.dictionaries(
        st.sampled_from("abcd"),
        st.lists(st.tuples(st.integers(0, 63), st.integers(0, 63)), max_size=4),
        max_size=4,
    )
)
def test_partition_gives_each_address_exactly_its_holders(
    spans: dict[str, list[tuple[int, int]]],
) -> None:
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    holders = {
        k: [ipam.Range(4, base + min(a, b), base + max(a, b)) for a, b in v]
        for k, v in spans.items()
    }
    pieces = ipam.partition(holders)
    seen: dict[int, frozenset[str]] = {}
    for rng, keys in pieces:
        assert keys
        for value in range(rng.first, rng.last + 1):
            assert value not in seen
            seen[value] = keys
    for value in range(base, base + 64):
        expected = frozenset(
            k for k, rs in holders.items() if any(value in range(x.first, x.last + 1) for x in rs)
        )
        assert seen.get(value, frozenset()) == expected
    for (a, ka), (b, kb) in itertools.pairwise(pieces):
        assert a.last < b.first and (ka != kb or a.last + 1 < b.first)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("198.51.100.7", True),
        ("2001:db8::7", True),
        ("127.0.0.1", True),  # any kind: whether a LoadBalancer may use it is parse_ip's
        ("apiserver.lab", False),
        ("198.51.100.0/30", False),
    ],
)
def test_is_address(text: str, address: bool) -> None:
    assert ipam.is_address(text) is address
