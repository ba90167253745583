"""lbctl convert: MetalLB's and kube-vip's ConfigMaps become our pools, a note for each loss."""

from __future__ import annotations

import ipaddress
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl import config, convert


def pools_of(conv: convert.Conversion) -> list[dict[str, Any]]:
    """The converted pools, after checking the result is what the controller accepts."""
    cm = conv.config_map
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert cm["metadata"] == {"name": "lbctl-config", "namespace": "lbctl-system"}
    text = cm["data"]["config.yaml"]
    config.parse_yaml(text)
    pools: list[dict[str, Any]] = yaml.safe_load(text)["pools"]
    return pools


def summary(conv: convert.Conversion) -> list[tuple[Any, ...]]:
    return [
        (p["name"], p["addresses"], p["autoAssign"], p["avoidBuggyIPs"]) for p in pools_of(conv)
    ]


def assert_notes(conv: convert.Conversion, expected: list[str]) -> None:
    """Every expected fragment is in some note, and there is no note nobody expected."""
    for fragment in expected:
        assert any(fragment in n for n in conv.notes), (fragment, conv.notes)
    assert len(conv.notes) == len(expected), conv.notes


# --- MetalLB -----------------------------------------------------------------------------

METALLB_INNER = """\
address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 192.168.1.240-192.168.1.250
  - 2001:db8:1::/120
"""


def metallb_configmap(inner: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: config, namespace: metallb-system}\n"
        "data:\n  config: |\n" + textwrap.indent(inner, "    ")
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(METALLB_INNER, id="the inner config text"),
        pytest.param(metallb_configmap(METALLB_INNER), id="the whole ConfigMap manifest"),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n---\n"
            + metallb_configmap(METALLB_INNER)
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {a: b}\n",
            id="the ConfigMap among other documents",
        ),
        pytest.param(
            "apiVersion: v1\nkind: List\nitems:\n"
            + textwrap.indent(metallb_configmap(METALLB_INNER), "- ").replace("\n- ", "\n  "),
            id="kubectl get -o yaml's List",
        ),
    ],
)
def test_metallb_input_forms_convert_alike(text: str) -> None:
    conv = convert.convert("metallb", text)
    assert summary(conv) == [
        ("lan", ["192.168.1.240-192.168.1.250", "2001:db8:1::/120"], True, False)
    ]
    assert conv.notes == ()


@pytest.mark.parametrize(
    ("inner", "pools", "notes"),
    [
        pytest.param(
            """
            address-pools:
            - {name: lan, protocol: layer2, addresses: [198.51.100.0/28],
               auto-assign: false, avoid-buggy-ips: true}
            """,
            [("lan", ["198.51.100.0/28"], False, True)],
            [],
            id="a layer2 pool keeps its name, addresses and both flags",
        ),
        pytest.param(
            """
            peers:
            - {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500}
            bgp-communities: {no-advertise: "65535:65282"}
            address-pools:
            - {name: lan, protocol: layer2, addresses: [198.51.100.0/28]}
            - name: routed
              protocol: bgp
              addresses: [203.0.113.0/24]
              bgp-advertisements: [{aggregation-length: 32}]
            """,
            [("lan", ["198.51.100.0/28"], True, False)],
            [
                "peers (1) not carried over",
                "bgp-communities (1) not carried over",
                "pool 'routed': protocol bgp, not converted; its addresses '203.0.113.0/24' "
                "are left out",
            ],
            id="a bgp pool, peers and communities are left out with a note each",
        ),
        pytest.param(
            """
            address-pools:
            - {name: Prod_LAN, protocol: layer2, addresses: [198.51.100.0/28]}
            - {name: prod-lan, protocol: layer2, addresses: [198.51.100.16/28]}
            - {name: "--", protocol: layer2, addresses: [198.51.100.32/28]}
            """,
            [
                ("prod-lan-2", ["198.51.100.0/28"], True, False),
                ("prod-lan", ["198.51.100.16/28"], True, False),
                ("pool", ["198.51.100.32/28"], True, False),
            ],
            ["pool 'Prod_LAN' renamed 'prod-lan-2'", "pool '--' renamed 'pool'"],
            id="invalid names are sanitized without taking a valid pool's name",
        ),
        pytest.param(
            """
            address-pools:
            - name: v6
              protocol: layer2
              addresses: ["2001:db8::/64", "2001:db8:1::5-2001:db8:1::9"]
            """,
            [("v6", ["2001:db8::/64", "2001:db8:1::5-2001:db8:1::9"], True, False)],
            [],
            id="IPv6 CIDRs and ranges convert as they are",
        ),
        pytest.param(
            """
            address-pools:
            - {name: a, protocol: layer2, addresses: [198.51.100.0/28]}
            - {name: b, protocol: layer2, addresses: [198.51.100.8-198.51.100.20, 198.51.100.3]}
            """,
            [
                ("a", ["198.51.100.0/28"], True, False),
                ("b", ["198.51.100.16-198.51.100.20"], True, False),
            ],
            [
                "pool 'b': '198.51.100.8-198.51.100.20' overlaps pool 'a'; "
                "kept 198.51.100.16-198.51.100.20",
                "pool 'b': '198.51.100.3' overlaps pool 'a'; left out",
            ],
            id="a later pool loses the addresses an earlier one holds",
        ),
        pytest.param(
            """
            address-pools:
            - name: a
              protocol: layer2
              addresses: [127.0.0.1/32, 198.51.100.5/30, 198.51.100.4/32, "fe80::/64"]
            """,
            [("a", ["198.51.100.4/30"], True, False)],
            [
                "'127.0.0.1/32' is a loopback range",
                "'198.51.100.5/30' has host bits set; written as 198.51.100.4/30",
                "pool 'a': '198.51.100.4/32' overlaps pool 'a'; left out",
                "'fe80::/64' is a link-local range",
            ],
            id="entries lbctl refuses are left out, host bits are cleared",
        ),
        pytest.param(
            """
            address-pools:
            - {name: a, protocol: layer2, addresses: [198.51.100.0/28], arp-network: x,
               bgp-advertisements: []}
            surprise: 1
            """,
            [("a", ["198.51.100.0/28"], True, False)],
            [
                "unknown key 'surprise' ignored",
                "pool 'a': unknown key 'arp-network' ignored",
                "pool 'a': bgp-advertisements not carried over",
            ],
            id="unknown keys and layer2 bgp-advertisements are noted",
        ),
    ],
)
def test_metallb(inner: str, pools: list[tuple[Any, ...]], notes: list[str]) -> None:
    conv = convert.convert("metallb", textwrap.dedent(inner))
    assert summary(conv) == pools
    assert_notes(conv, notes)


# --- kube-vip ----------------------------------------------------------------------------


def kube_vip_configmap(data: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubevip", "namespace": "kube-system"},
            "data": data,
        }
    )


def kv_pools(conv: convert.Conversion) -> list[tuple[Any, ...]]:
    return [
        (p["name"], p["addresses"], p.get("namespaces", []), p.get("priority", 0))
        for p in pools_of(conv)
    ]


BUGGY = "avoidBuggyIPs set on every pool"
FALLBACK = "namespace pools have priority 0, the global pool 10"


@pytest.mark.parametrize(
    ("data", "pools", "notes"),
    [
        pytest.param(
            {"range-global": "192.168.0.200-192.168.0.210"},
            [("global", ["192.168.0.200-192.168.0.210"], [], 10)],
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
                ("team-a", ["10.1.0.0/28", "10.1.0.32/28"], ["team-a"], 0),
                ("team-b", ["10.2.0.0/28"], ["team-b"], 0),
                ("global", ["192.168.0.0/24"], [], 10),
            ],
            [BUGGY, FALLBACK],
            id="namespace pools come first, the global pool after them",
        ),
        pytest.param(
            {
                "cidr-global": "192.168.0.0/24",
                "allow-share-team-a": "true",
                "allow-share-team-b": "false",
                "allow-share-team-c": "maybe",
            },
            [("global", ["192.168.0.0/24"], [], 10)],
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
            [("team-a", ["10.1.0.0/28"], ["team-a"], 0)],
            [BUGGY, "range-team-a left out: kube-vip uses cidr-team-a before it"],
            id="a range is shadowed by the namespace's cidr",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.0/28", "range-team-a": "10.9.0.1-10.9.0.5"},
            [("global", ["10.1.0.0/28"], [], 10)],
            [BUGGY, "range-team-a left out: kube-vip uses cidr-global before it"],
            id="a namespace range is shadowed by cidr-global",
        ),
        pytest.param(
            {
                "cidr-global": "10.1.0.0/28,10.1.0.16/31,2001:db8::/126",
                "range-team-a": "10.2.0.0-10.2.0.9",
                "skip-end-ips-in-cidr": "true",
            },
            [("global", ["10.1.0.1-10.1.0.14", "10.1.0.16/31", "2001:db8::/126"], [], 10)],
            [BUGGY, "skip-end-ips-in-cidr", "range-team-a left out"],
            id="skip-end-ips-in-cidr trims IPv4 CIDRs only, and not /31",
        ),
        pytest.param(
            {"cidr-global": "0.0.0.0/32, 10.1.0.0/28", "cidr-lab": "0.0.0.0/32"},
            [("global", ["10.1.0.0/28"], [], 10)],
            [
                BUGGY,
                FALLBACK,
                "cidr-global: 0.0.0.0/32 (DHCP) left out",
                "cidr-lab: 0.0.0.0/32 (DHCP) left out",
                "cidr-lab: no usable addresses left, pool left out",
            ],
            id="DHCP entries are left out",
        ),
        pytest.param(
            {
                "range-global": "192.168.0.10-192.168.0.20,2001:db8::10-2001:db8::20",
                "cidr-v6": "2001:db8:1::/120",
            },
            [
                ("v6", ["2001:db8:1::/120"], ["v6"], 0),
                ("global", ["192.168.0.10-192.168.0.20", "2001:db8::10-2001:db8::20"], [], 10),
            ],
            [BUGGY, FALLBACK],
            id="IPv6 and dual-stack values convert",
        ),
        pytest.param(
            {"cidr-global": "10.1.0.0/24", "cidr-team-a": "10.1.0.0/28"},
            [
                ("team-a", ["10.1.0.0/28"], ["team-a"], 0),
                ("global", ["10.1.0.16-10.1.0.255"], [], 10),
            ],
            [BUGGY, FALLBACK, "cidr-global: '10.1.0.0/24' overlaps cidr-team-a; kept 10.1.0.16"],
            id="a namespace pool keeps addresses the global one also lists",
        ),
        pytest.param(
            {
                "cidr-global": "10.1.0.0/28",
                "search-order": "desc",
                "lb-class": "x",
                "cidr-Bad_NS": "1",
            },
            [("global", ["10.1.0.0/28"], [], 10)],
            [
                BUGGY,
                "search-order desc not carried over",
                "unknown key 'lb-class' ignored",
                "unknown key 'cidr-Bad_NS' ignored",
            ],
            id="unknown keys and search-order are noted",
        ),
    ],
)
def test_kube_vip(data: dict[str, str], pools: list[tuple[Any, ...]], notes: list[str]) -> None:
    conv = convert.convert("kube-vip", kube_vip_configmap(data))
    assert kv_pools(conv) == pools
    assert all(p["avoidBuggyIPs"] and p["autoAssign"] for p in pools_of(conv))
    assert_notes(conv, notes)


@pytest.mark.parametrize(
    ("data", "interfaces", "note"),
    [
        pytest.param(
            {"interface-global": "eth1"},
            ["eth1"],
            "announced on 'eth1' only",
            id="interface-global alone becomes announce.interfaces",
        ),
        pytest.param(
            {"interface-global": "eth1", "interface-team-a": "eth2"},
            None,
            "interface-team-a not carried over",
            id="with per-namespace interfaces none is carried over",
        ),
        pytest.param(
            {"interface-global": "bad/name"},
            None,
            "interface-global not carried over",
            id="an invalid interface name is not carried over",
        ),
    ],
)
def test_kube_vip_interfaces(data: dict[str, str], interfaces: list[str] | None, note: str) -> None:
    conv = convert.convert("kube-vip", kube_vip_configmap({"cidr-global": "10.1.0.0/28", **data}))
    document = yaml.safe_load(conv.config_map["data"]["config.yaml"])
    assert document.get("announce", {}).get("interfaces") == interfaces
    assert any(note in n for n in conv.notes)


def test_kube_vip_accepts_the_bare_data_mapping() -> None:
    conv = convert.convert("kube-vip", "cidr-global: 10.1.0.0/28\nallow-share-a: true\n")
    assert kv_pools(conv) == [("global", ["10.1.0.0/28"], [], 10)]
    assert any(n.startswith("allow-share-a not carried over") for n in conv.notes)


# --- errors ------------------------------------------------------------------------------

CRDS = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
"""


@pytest.mark.parametrize(
    ("source", "text", "message"),
    [
        ("cilium", METALLB_INNER, "unknown source 'cilium': expected one of metallb, kube-vip"),
        ("metallb", "", "the input is empty"),
        ("metallb", "address-pools: [", "not valid YAML at line 1"),
        ("metallb", "when: 2020-13-45\n", "not valid YAML"),
        ("kube-vip", "\t- !!python/object:os.system x", "not valid YAML"),
        ("metallb", "- 1\n- 2\n", "a MetalLB config is a mapping with 'address-pools', not list"),
        ("metallb", "peers: []\n", "the MetalLB config has no 'address-pools'"),
        ("metallb", "a: 1\n---\nb: 2\n", "the input has 2 documents"),
        (
            "metallb",
            "address-pools: [{name: x, protocol: bgp, addresses: [10.0.0.0/24]}]\n",
            "nothing to convert: no pool with usable addresses; pool 'x': protocol bgp",
        ),
        (
            "metallb",
            "address-pools: [{name: x, addresses: [10.0.0.0/24]}]\n",
            "address-pools[0].protocol: None: expected layer2 or bgp",
        ),
        (
            "metallb",
            "address-pools:\n- {name: x, protocol: layer2, addresses: [10.0.0.0/28]}\n"
            "- {name: x, protocol: layer2, addresses: [10.0.1.0/28]}\n",
            "address-pools[1].name: duplicate pool name 'x' (also address-pools[0])",
        ),
        (
            "metallb",
            "address-pools: [{name: x, protocol: layer2, addresses: [10.0.0.0/28], "
            "auto-assign: 'no'}]\n",
            "address-pools[0].auto-assign: must be true or false, not str",
        ),
        (
            "metallb",
            "address-pools: [{name: x, protocol: layer2, addresses: []}, 7]\n",
            "address-pools[0].addresses: required, a non-empty list; "
            "address-pools[1]: must be a mapping, not int",
        ),
        ("metallb", CRDS, "MetalLB custom resources (IPAddressPool, L2Advertisement) are not"),
        (
            "metallb",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {x: y}\n",
            "no ConfigMap in the input holds a MetalLB config",
        ),
        (
            "metallb",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: '{'\n",
            "data.config is not valid YAML",
        ),
        (
            "kube-vip",
            kube_vip_configmap({"cidr-global": "10.0.0.0/28"})
            + "---\n"
            + kube_vip_configmap({"cidr-a": "10.0.1.0/28"}),
            "the input has 2 kube-vip ConfigMaps ('kubevip', 'kubevip'): keep one",
        ),
        ("kube-vip", "apiVersion: apps/v1\nkind: Deployment\n", "the input has no ConfigMap"),
        ("kube-vip", kube_vip_configmap({"allow-share-a": "true"}), "nothing to convert"),
        ("kube-vip", kube_vip_configmap({"cidr-global": "nonsense"}), "is not an IP address"),
        ("kube-vip", "cidr-global: [10.0.0.0/28]\n", "'cidr-global': must be a string, not list"),
        ("kube-vip", "just text", "expected kube-vip's ConfigMap"),
    ],
)
def test_bad_input_is_one_clear_convert_error(source: str, text: str, message: str) -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert(source, text)
    assert message in str(caught.value)


def test_convert_error_is_a_value_error_with_its_problems() -> None:
    err = convert.ConvertError(["a", "b"])
    assert isinstance(err, ValueError)
    assert (err.problems, str(err)) == (["a", "b"], "a; b")


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("metallb", "address-pools: [{name: 'A\\nB', protocol: layer2, addresses: [10.0.0.0/28]}]"),
        ("kube-vip", 'cidr-global: 10.1.0.0/28\n"odd\\u2028key\\nhere": x\n'),
    ],
)
def test_render_is_applyable_yaml_with_the_notes_as_comments(source: str, text: str) -> None:
    conv = convert.convert(source, text)
    out = convert.render(conv)
    assert yaml.safe_load(out) == conv.config_map
    head = out.split("apiVersion:", 1)[0].splitlines()
    assert head and all(line.startswith("#") for line in head)
    assert len(head) == 2 + len(conv.notes)
    assert "config.yaml: |" in out  # the embedded config stays readable


# --- properties --------------------------------------------------------------------------


def check_result(conv: convert.Conversion) -> None:
    config.parse_yaml(conv.config_map["data"]["config.yaml"])
    assert yaml.safe_load(convert.render(conv)) == conv.config_map


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(convert.SOURCES), text=st.text())
def test_random_text_yields_a_conversion_or_a_convert_error(source: str, text: str) -> None:
    try:
        conv = convert.convert(source, text)
    except convert.ConvertError:
        return
    check_result(conv)


# Addresses within one /24, so coverage can be compared address by address.
octet = st.integers(0, 255)
entry = st.one_of(
    st.tuples(octet, st.sampled_from([24, 25, 26, 28, 30, 32])).map(
        lambda t: str(ipaddress.ip_network(f"10.0.0.{t[0]}/{t[1]}", strict=False))
    ),
    st.tuples(octet, octet).map(lambda t: f"10.0.0.{min(t)}-10.0.0.{max(t)}"),
    octet.map(lambda o: f"10.0.0.{o}"),
)
pool_names = st.text(alphabet="abAB_-.1", min_size=1, max_size=6)


def covered(texts: list[str]) -> set[int]:
    out: set[int] = set()
    for t in texts:
        rng = config.ipam.parse_range(t)
        out.update(range(rng.first, rng.last + 1))
    return out


@settings(max_examples=200)
@given(
    pools=st.lists(
        st.tuples(pool_names, st.lists(entry, min_size=1, max_size=4)),
        min_size=1,
        max_size=5,
        unique_by=lambda p: p[0],
    )
)
def test_overlaps_are_carved_out_without_losing_or_adding_an_address(
    pools: list[tuple[str, list[str]]],
) -> None:
    inner = yaml.safe_dump(
        {
            "address-pools": [
                {"name": name, "protocol": "layer2", "addresses": addrs} for name, addrs in pools
            ]
        }
    )
    conv = convert.convert("metallb", inner)
    check_result(conv)
    out = pools_of(conv)
    assert covered([a for p in out for a in p["addresses"]]) == covered(
        [a for _, addrs in pools for a in addrs]
    )
    assert len({p["name"] for p in out}) == len(out)


kube_vip_keys = st.sampled_from(
    [
        "cidr-global",
        "range-global",
        "cidr-a",
        "range-a",
        "cidr-b",
        "allow-share-a",
        "skip-end-ips-in-cidr",
        "search-order",
        "interface-global",
        "x",
    ]
)
kube_vip_values = st.one_of(
    st.lists(entry, min_size=1, max_size=3).map(",".join),
    st.sampled_from(["true", "desc", "eth0", "0.0.0.0/32", "2001:db8::/64", ""]),
    st.text(max_size=10),
)


@settings(max_examples=200)
@given(data=st.dictionaries(kube_vip_keys, kube_vip_values, max_size=8))
def test_kube_vip_maps_yield_a_valid_config_or_a_convert_error(data: dict[str, str]) -> None:
    try:
        conv = convert.convert("kube-vip", kube_vip_configmap(data))
    except convert.ConvertError:
        return
    check_result(conv)
