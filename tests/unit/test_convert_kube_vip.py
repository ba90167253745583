"""lbctl convert --from kube-vip: the ``kubevip`` ConfigMap becomes pools that give every
namespace exactly the addresses kube-vip gave it, lowest first; what kube-vip fails on is
refused; a note for each loss."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from convert_helpers import (
    assert_notes,
    check_result,
    document,
    kube_vip_configmap,
    parsed,
    pools_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl import config, convert, ipam

BUGGY = "avoidBuggyIPs set on every pool"
NAME = config.NAMESPACE_NAME_LABEL


def not_in(*namespaces: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": NAME, "operator": "NotIn", "values": list(namespaces)}]}


def kv_pools(conv: convert.Conversion) -> list[tuple[Any, ...]]:
    return [
        (p["name"], p["addresses"], p.get("namespaces", []), p.get("namespaceSelector"),
         p.get("priority", 0))
        for p in pools_of(conv)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "pools", "notes"),
    [
        pytest.param(
            {"range-global": "192.168.0.200-192.168.0.210"},
            [("global", ["192.168.0.200-192.168.0.210"], [], None, 0)],
            [BUGGY],
            id="the global range serves every namespace",
        ),
        pytest.param(
            {
                "cidr-global": "192.168.0.0/24",
                "cidr-team-a": "10.1.0.0/28,10.1.0.32/28",
                "cidr-team-b": "10.2.0.0/28",
            },
            [
                ("team-a", ["10.1.0.0/28", "10.1.0.32/28"], ["team-a"], None, 0),
                ("team-b", ["10.2.0.0/28"], ["team-b"], None, 0),
                ("global", ["192.168.0.0/24"], [], not_in("team-a", "team-b"), 0),
            ],
            [BUGGY],
            id="a namespace with its own pool never gets a global address, as in kube-vip",
        ),
        pytest.param(
            {
                "cidr-global": "192.168.0.0/24",
                "allow-share-team-a": "true",
                "allow-share-team-b": "false",
                "allow-share-team-c": "maybe",
            },
            [("global", ["192.168.0.0/24"], [], None, 0)],
            [
                BUGGY,
                "allow-share-team-a not carried over: lbctl shares an address only between "
                "Services with the same lbctl.io/allow-shared-ip key",
                "allow-share-team-c: 'maybe' is not a boolean",
            ],
            id="allow-share becomes a note; false needs none",
        ),
        pytest.param(
            {"cidr-team-a": "10.1.0.0/28", "range-team-a": "10.9.0.1-10.9.0.5"},
            [("team-a", ["10.1.0.0/28"], ["team-a"], None, 0)],
            [BUGGY, "range-team-a left out: kube-vip uses cidr-team-a before it"],
            id="a range is shadowed by the namespace's cidr",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.0/28", "range-team-a": "10.9.0.1-10.9.0.5"},
            [("global", ["10.1.0.0/28"], [], None, 0)],
            [BUGGY, "range-team-a left out: kube-vip uses cidr-global before it"],
            id="a namespace range is shadowed by cidr-global",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.0/28", "range-global": "10.9.0.1-10.9.0.5"},
            [("global", ["10.1.0.0/28"], [], None, 0)],
            [BUGGY, "range-global left out: kube-vip uses cidr-global before it"],
            id="range-global is shadowed by cidr-global",
        ),
        pytest.param(
            {
                "cidr-global": "10.1.0.0/28,10.1.0.16/31,2001:db8::/126,10.1.0.64/32",
                "range-team-a": "10.2.0.0-10.2.0.9",
                "skip-end-ips-in-cidr": "true",
            },
            [("global", ["10.1.0.1-10.1.0.14", "10.1.0.16/31", "10.1.0.64", "2001:db8::/126"],
              [], None, 0)],
            [BUGGY, "skip-end-ips-in-cidr", "range-team-a left out"],
            id="skip-end-ips-in-cidr trims IPv4 prefixes only, and not /31 or /32",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.0/28,10.1.0.16/28", "skip-end-ips-in-cidr": "true"},
            [("global", ["10.1.0.1-10.1.0.30"], [], None, 0)],
            [BUGGY, "skip-end-ips-in-cidr"],
            id="skip-end-ips-in-cidr trims the merged prefix, as kube-vip's IPSet does",
        ),
        pytest.param(
            {"cidr-global": "0.0.0.0/32", "cidr-lab": "0.0.0.0/32", "cidr-web": "10.1.0.0/28"},
            [("web", ["10.1.0.0/28"], ["web"], None, 0)],
            [
                BUGGY,
                "cidr-global: 0.0.0.0/32 (DHCP) left out: lbctl has no DHCP; Services in "
                "namespaces without a key of their own get no address",
                "cidr-lab: 0.0.0.0/32 (DHCP) left out: lbctl has no DHCP; Services in "
                "namespace lab get no address",
            ],
            id="DHCP keys are left out, and say whom that leaves without an address",
        ),
        pytest.param(
            {
                "range-global": "192.168.0.10-192.168.0.20,2001:db8::10-2001:db8::20",
                "cidr-v6": "2001:db8:1::/120",
            },
            [
                ("v6", ["2001:db8:1::/120"], ["v6"], None, 0),
                ("global", ["192.168.0.10-192.168.0.20", "2001:db8::10-2001:db8::20"], [],
                 not_in("v6"), 0),
            ],
            [BUGGY],
            id="IPv6 and dual-stack values convert",
        ),
        pytest.param(
            {"cidr-global": "192.0.2.200/29", "cidr-default": "192.0.2.200/29"},
            [("default-global", ["192.0.2.200/29"], [], None, 0)],
            [BUGGY, "cidr-default and cidr-global share '192.0.2.200/29'"],
            id="a namespace pool equal to the global pool still serves every namespace (fault)",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.0/24", "cidr-team-a": "10.1.0.0/28"},
            [
                ("global", ["10.1.0.16-10.1.0.255"], [], not_in("team-a"), 1),
                ("team-a-global", ["10.1.0.0/28"], [], None, 0),
            ],
            [BUGGY, "cidr-team-a and cidr-global share '10.1.0.0/28'"],
            id="a namespace pool inside the global one: shared part for all, lowest first",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.8/29", "cidr-a": "10.1.0.0/28", "cidr-b": "10.1.0.12/30"},
            [
                ("a", ["10.1.0.0/29"], ["a"], None, 0),
                ("a-global", ["10.1.0.8/30"], [], not_in("b"), 1),
                ("a-b-global", ["10.1.0.12/30"], [], None, 2),
            ],
            [BUGGY, "cidr-a and cidr-global share '10.1.0.8/30'",
             "cidr-a and cidr-b and cidr-global share '10.1.0.12/30'"],
            id="three overlapping keys: a pool per set of holders",
        ),
        pytest.param(
            {
                "cidr-global": "10.1.0.0/28",
                "search-order": "desc",
                "lb-class": "x",
                "cidr-Bad_NS": "1",
            },
            [("global", ["10.1.0.0/28"], [], None, 0)],
            [
                BUGGY,
                "search-order desc not carried over",
                "unknown key 'lb-class' ignored",
                "unknown key 'cidr-Bad_NS' ignored",
            ],
            id="unknown keys and search-order are noted",
        ),
    ],
)  # fmt: skip
def test_kube_vip(data: dict[str, str], pools: list[tuple[Any, ...]], notes: list[str]) -> None:
    conv = convert.convert("kube-vip", kube_vip_configmap(data))
    assert kv_pools(conv) == pools
    assert all(p["avoidBuggyIPs"] and p["autoAssign"] for p in pools_of(conv))
    assert_notes(conv, notes)


def test_an_equal_namespace_pool_keeps_every_other_namespace_served() -> None:
    """The issue's fault: cidr-default equal to cidr-global left only a pool for 'default'."""
    conv = convert.convert(
        "kube-vip",
        kube_vip_configmap({"cidr-default": "192.0.2.200/29", "cidr-global": "192.0.2.200/29"}),
    )
    cfg = parsed(conv)
    for namespace in ("default", "shop", "kube-system"):
        assert [p.name for p in cfg.pools_for_namespace(namespace, {})] == ["default-global"]


@pytest.mark.parametrize(
    ("data", "global_interfaces", "pool_announce", "note"),
    [
        pytest.param(
            {"interface-global": "eth1"},
            ["eth1"],
            {},
            "announced on 'eth1' only",
            id="interface-global alone becomes announce.interfaces",
        ),
        pytest.param(
            {"interface-global": "eth0", "interface-default": "eth0",
             "cidr-default": "10.2.0.0/28"},
            ["eth0"],
            {},
            "announced on 'eth0' only",
            id="interface-default equal to interface-global: announce.interfaces (fault)",
        ),
        pytest.param(
            {"interface-global": "eth0", "interface-lab": "eth1", "cidr-lab": "10.2.0.0/28"},
            None,
            {"lab": {"interfaces": ["eth1"]}, "global": {"interfaces": ["eth0"]}},
            None,
            id="a namespace's own interface is its pool's",
        ),
        pytest.param(
            {"interface-lab": "vlan20", "cidr-lab": "10.2.0.0/28"},
            None,
            {"lab": {"interfaces": ["vlan20"]}},
            None,
            id="only one namespace has an interface: the others stay automatic",
        ),
        pytest.param(
            {"interface-global": "eth1", "interface-team-a": "eth2"},
            None,
            {"global": {"interfaces": ["eth1", "eth2"]}},
            "cidr-global: its Services were announced on different interfaces (eth1, eth2)",
            id="a namespace without its own pool but its own interface: the pool on both",
        ),
        pytest.param(
            {"interface-global": "bad/name"},
            None,
            {},
            "interface-global: 'bad/name' is not an interface name: not carried over",
            id="an invalid interface name is not carried over",
        ),
    ],
)  # fmt: skip
def test_kube_vip_interfaces(
    data: dict[str, str],
    global_interfaces: list[str] | None,
    pool_announce: dict[str, Any],
    note: str | None,
) -> None:
    conv = convert.convert("kube-vip", kube_vip_configmap({"cidr-global": "10.1.0.0/28", **data}))
    doc = document(conv)
    assert doc.get("announce", {}).get("interfaces") == global_interfaces
    assert {p["name"]: p["announce"] for p in doc["pools"] if "announce" in p} == pool_announce
    if note:
        assert any(note in n for n in conv.notes), conv.notes


def test_kube_vip_accepts_the_bare_data_mapping() -> None:
    conv = convert.convert("kube-vip", "cidr-global: 10.1.0.0/28\nallow-share-a: true\n")
    assert kv_pools(conv) == [("global", ["10.1.0.0/28"], [], None, 0)]
    assert any(n.startswith("allow-share-a not carried over") for n in conv.notes)


def test_kube_vip_beside_unrelated_objects_says_what_was_ignored() -> None:
    deployment = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: kube-vip-cloud-provider}\n"
    )
    conv = convert.convert(
        "kube-vip", deployment + "---\n" + kube_vip_configmap({"cidr-global": "10.1.0.0/28"})
    )
    assert kv_pools(conv) == [("global", ["10.1.0.0/28"], [], None, 0)]
    assert_notes(conv, [BUGGY, "ignored 1 object that are not kube-vip's ConfigMap: Deployment"])


KUBE_VIP_REFUSED = [
    ({"cidr-global": "10.1.0.0/28, 10.1.1.0/28"}, "cidr-global: ' 10.1.1.0/28' has a space"),
    ({"cidr-global": "0.0.0.0/32, 10.1.0.0/28"}, "cidr-global: ' 10.1.0.0/28' has a space"),
    ({"range-global": "10.1.0.1-10.1.0.9,"}, "range-global: an empty entry (a trailing comma"),
    ({"cidr-a": "10.1.0.0/28,,10.2.0.0/28"}, "cidr-a: an empty entry"),
    ({"range-global": "10.1.0.7"}, "range-global: '10.1.0.7' is not a start-end range (a bare "
                                   "address: write 10.1.0.7-10.1.0.7)"),
    ({"cidr-global": "10.1.0.7"}, "cidr-global: '10.1.0.7' is not a start-end range"),
    ({"cidr-global": "10.1.0.0/28,10.2.0.1-10.2.0.5"}, "'10.2.0.1-10.2.0.5' is not a CIDR"),
    ({"cidr-global": "10.1.0.0/33"}, "cidr-global: '10.1.0.0/33' is not a CIDR"),
    ({"range-a": "10.1.0.1 - 10.1.0.5"}, "range-a: '10.1.0.1 - 10.1.0.5' has a space"),
    ({"cidr-global": ""}, "cidr-global: empty (kube-vip: pool is not specified)"),
    ({"cidr-global": "nonsense"}, "cidr-global: 'nonsense' is not a start-end range; kube-vip "
                                  "fails every Service it serves"),
    ({"allow-share-a": "true"}, "nothing to convert"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"), KUBE_VIP_REFUSED, ids=[m for _, m in KUBE_VIP_REFUSED]
)
def test_what_kube_vip_fails_on_is_refused_with_the_reason(
    data: dict[str, str], message: str
) -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert("kube-vip", kube_vip_configmap(data))
    assert message in str(caught.value)


def test_a_reversed_range_adds_nothing_as_in_kube_vip() -> None:
    conv = convert.convert(
        "kube-vip", kube_vip_configmap({"range-global": "10.1.0.9-10.1.0.1,10.2.0.1-10.2.0.2"})
    )
    assert kv_pools(conv) == [("global", ["10.2.0.1-10.2.0.2"], [], None, 0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            kube_vip_configmap({"cidr-global": "10.0.0.0/28"})
            + "---\n"
            + kube_vip_configmap({"cidr-a": "10.0.1.0/28"}),
            "the input has 2 kube-vip ConfigMaps ('kubevip', 'kubevip'): keep one",
        ),
        ("apiVersion: apps/v1\nkind: Deployment\n", "no kube-vip ConfigMap in the input"),
        ("cidr-global: [10.0.0.0/28]\n", "'cidr-global': must be a string, not list"),
        ("just text", "expected kube-vip's ConfigMap"),
        ("cidr-global: 10.0.0.0/28\ncidr-global: 10.0.1.0/28\n", "duplicate key 'cidr-global'"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip}\n"
            "data:\n  cidr-global: 10.0.0.0/28\n  cidr-global: 10.1.0.0/28\n",
            "not valid YAML at line 6, column 3: duplicate key 'cidr-global' (first at line 5)",
        ),
    ],
)
def test_kube_vip_bad_input_is_one_clear_convert_error(text: str, message: str) -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert("kube-vip", text)
    assert message in str(caught.value)


# --- property: every namespace gets exactly what kube-vip gave it, lowest first ------------

BASE = int(ipaddress.IPv4Address("10.0.0.0"))
NAMESPACES = ("a", "b", "other")


def kube_vip_gives(data: dict[str, str], namespace: str) -> list[int] | None:
    """kube-vip-cloud-provider's allocation order for ``namespace``, address by address (a
    reference model over 10.0.0.0/24: lookup order, CIDR or range list, .0/.255 skipped,
    skip-end-ips-in-cidr); None when kube-vip fails on the value."""
    for kind in ("cidr", "range"):
        for owner in (namespace, "global"):
            value = data.get(f"{kind}-{owner}")
            if value is None:
                continue
            addresses: set[int] = set()
            for part in value.split(","):
                if "/" in value:
                    if "/" not in part:
                        return None
                    net = ipaddress.ip_network(part, strict=False)
                    first, last = int(net.network_address), int(net.broadcast_address)
                    addresses.update(range(first, last + 1))
                else:
                    ends = part.split("-")
                    if len(ends) != 2:
                        return None
                    first, last = (int(ipaddress.ip_address(e)) for e in ends)
                    addresses.update(range(first, last + 1))
            if "/" in value and data.get("skip-end-ips-in-cidr") == "true":
                trimmed = set()
                for rng in ipam.merge(ipam.Range(4, x, x) for x in addresses):
                    for net in ipaddress.summarize_address_range(
                        rng.ip(rng.first), rng.ip(rng.last)
                    ):
                        lo, hi = int(net.network_address), int(net.broadcast_address)
                        if net.prefixlen < 31:
                            lo, hi = lo + 1, hi - 1
                        trimmed.update(range(lo, hi + 1))
                addresses = trimmed
            return sorted(x for x in addresses if x & 0xFF not in (0, 255))
    return []


def lbctl_gives(cfg: config.PoolConfig, namespace: str) -> list[int]:
    """Our allocator's order for a Service in ``namespace``: pools that admit it by (priority,
    name), entries as listed, each lowest first, buggy addresses skipped."""
    out = []
    for pool in cfg.pools_for_namespace(namespace, {}):
        for rng in pool.ranges:
            out.extend(x for x in range(rng.first, rng.last + 1) if x & 0xFF not in (0, 255))
    return out


octet = st.integers(0, 255)
cidr_entry = st.tuples(octet, st.sampled_from([26, 27, 28, 29, 30, 31, 32])).map(
    lambda t: str(ipaddress.ip_network(f"10.0.0.{t[0]}/{t[1]}", strict=False))
)
range_entry = st.tuples(octet, octet).map(lambda t: f"10.0.0.{min(t)}-10.0.0.{max(t)}")
value = st.one_of(
    st.lists(cidr_entry, min_size=1, max_size=3).map(",".join),
    st.lists(range_entry, min_size=1, max_size=3).map(",".join),
)
keys = st.sampled_from(["cidr-global", "range-global", "cidr-a", "range-a", "cidr-b", "range-b"])


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(keys, value, min_size=1, max_size=5),
    skip=st.booleans(),
)
def test_every_namespace_gets_what_kube_vip_gave_it_lowest_first(
    data: dict[str, str], skip: bool
) -> None:
    if skip:
        data = {**data, "skip-end-ips-in-cidr": "true"}
    try:
        conv = convert.convert("kube-vip", kube_vip_configmap(data))
    except convert.ConvertError as exc:
        assert "nothing to convert" in str(exc), exc
        assert all(not kube_vip_gives(data, n) for n in NAMESPACES)
        return
    check_result(conv)
    cfg = parsed(conv)
    order_notes = [n for n in conv.notes if "lowest free address first" in n]
    for namespace in NAMESPACES:
        expected, ours = kube_vip_gives(data, namespace), lbctl_gives(cfg, namespace)
        assert expected is not None
        assert sorted(ours) == expected, namespace  # the same addresses, each once
        if not order_notes:
            assert ours == expected, namespace  # in the same order
