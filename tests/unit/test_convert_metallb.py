"""lbctl convert --from metallb: its resources and its legacy config, in every shape users keep
them, become our pools; what MetalLB refuses is refused; a note for each loss."""

from __future__ import annotations

import ipaddress
import textwrap
from typing import Any

import pytest
import yaml
from convert_helpers import (
    assert_notes,
    check_result,
    document,
    metallb_configmap,
    parsed,
    pools_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl import config, convert


def summary(conv: convert.Conversion) -> list[tuple[Any, ...]]:
    return [
        (p["name"], p["addresses"], p["autoAssign"], p["avoidBuggyIPs"]) for p in pools_of(conv)
    ]


# --- the legacy ConfigMap (MetalLB up to 0.12) --------------------------------------------

METALLB_INNER = """\
address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 192.168.1.240-192.168.1.250
  - 2001:db8:1::/120
"""
IGNORED_TWO = (
    "ignored 2 objects that are not MetalLB configuration: Namespace 'metallb-system', "
    "ConfigMap 'other'"
)


@pytest.mark.parametrize(
    ("text", "notes"),
    [
        pytest.param(METALLB_INNER, [], id="the inner config text"),
        pytest.param(metallb_configmap(METALLB_INNER), [], id="the whole ConfigMap manifest"),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n---\n"
            + metallb_configmap(METALLB_INNER)
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {a: b}\n",
            [IGNORED_TWO],
            id="the ConfigMap among other documents, which are ignored with a note",
        ),
        pytest.param(
            "apiVersion: v1\nkind: List\nitems:\n"
            + textwrap.indent(metallb_configmap(METALLB_INNER), "- ").replace("\n- ", "\n  "),
            [],
            id="kubectl get -o yaml's List",
        ),
        pytest.param(
            "configInline:\n" + textwrap.indent(METALLB_INNER, "  ") + "controller: {}\n",
            [],
            id="Helm values with configInline (the chart up to 0.12)",
        ),
        pytest.param(
            "configInline: |\n" + textwrap.indent(METALLB_INNER, "  "),
            [],
            id="Helm values with configInline as a string",
        ),
        pytest.param(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
            "metadata: {name: metallb, namespace: flux-system}\n"
            "spec:\n  chart: {spec: {chart: metallb, version: 0.12.1}}\n  values:\n"
            "    configInline:\n" + textwrap.indent(METALLB_INNER, "      "),
            [],
            id="a Flux HelmRelease carrying configInline",
        ),
        pytest.param(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\n"
            "metadata: {name: metallb, namespace: argocd}\n"
            "spec:\n  source:\n    chart: metallb\n    helm:\n      valuesObject:\n"
            "        configInline:\n" + textwrap.indent(METALLB_INNER, "          "),
            [],
            id="an Argo CD Application with valuesObject",
        ),
    ],
)
def test_metallb_legacy_input_forms_convert_alike(text: str, notes: list[str]) -> None:
    conv = convert.convert("metallb", text)
    assert summary(conv) == [
        ("lan", ["192.168.1.240-192.168.1.250", "2001:db8:1::/120"], True, False)
    ]
    assert_notes(conv, notes)


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
            bfd-profiles: [{name: fast, receive-interval: 100, echo-mode: true}]
            peers: [{peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500, bfd-profile: fast,
                     ebgp-multihop: true, keepalive-time: 10s,
                     node-selectors: [{match-labels: {rack: a}}]}]
            address-pools:
            - {name: lan, protocol: layer2, addresses: [198.51.100.0/28], bgp-advertisements: []}
            """,
            [("lan", ["198.51.100.0/28"], True, False)],
            ["peers (1) not carried over", "bfd-profiles (1) not carried over"],
            id="real keys of MetalLB 0.12 (bfd-profiles, bfd-profile, ...) are not unknown",
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
            - name: a
              protocol: layer2
              addresses: [127.0.0.1/32, 198.51.100.5/30, "fe80::/64", "198.51.100.8 - 198.51.100.9"]
            """,
            [("a", ["198.51.100.4/30", "198.51.100.8 - 198.51.100.9"], True, False)],
            [
                "'127.0.0.1/32' is a loopback range",
                "'198.51.100.5/30' has host bits set; written as 198.51.100.4/30",
                "'fe80::/64' is a link-local range",
            ],
            id="entries lbctl refuses are left out, host bits are cleared, spaces in a range ok",
        ),
        pytest.param(
            """
            address-pools:
            - {name: 2024, protocol: layer2, addresses: [198.51.100.0/28], auto-assign: no}
            """,
            [("2024", ["198.51.100.0/28"], False, False)],
            [],
            id="YAML 1.1 as MetalLB reads it: a number as a name, no as false",
        ),
    ],
)
def test_metallb_legacy(inner: str, pools: list[tuple[Any, ...]], notes: list[str]) -> None:
    conv = convert.convert("metallb", textwrap.dedent(inner))
    assert summary(conv) == pools
    assert_notes(conv, notes)
    assert "announce" not in pools_of(conv)[0]  # MetalLB 0.12 announced from every node


# --- what MetalLB refuses is refused ------------------------------------------------------

LEGACY_REFUSED = [
    (
        "address-pools: [{name: x, protocol: layer2, addresses: [10.0.0.0/28], "
        "auto_assign: false}]",
        "address-pools[0].auto_assign: unknown key (MetalLB refuses it; "
        "did you mean 'auto-assign'?)",
    ),
    (
        "address-pools: [{name: a, protocol: layer2, addresses: [198.51.100.0/28], "
        "arp-network: x}]\n",
        "address-pools[0].arp-network: unknown key (MetalLB refuses it)",
    ),
    (
        "surprise: 1\naddress-pools: [{name: a, protocol: layer2, addresses: [198.51.100.0/28]}]",
        "surprise: unknown key (MetalLB refuses it)",
    ),
    (
        "peers: [{peer-address: 10.0.0.1, peer_asn: 1}]\n"
        "address-pools: [{name: a, protocol: layer2, addresses: [198.51.100.0/28]}]",
        "peers[0].peer_asn: unknown key (MetalLB refuses it; did you mean 'peer-asn'?)",
    ),
    (
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [198.51.100.0/28]\n"
        "  bgp-advertisements: [{aggregation-length: 32}]\n",
        "address-pools[0].bgp-advertisements: a layer2 pool cannot have bgp-advertisements "
        "(MetalLB refuses it)",
    ),
    (
        "address-pools:\n- {name: a, protocol: layer2, addresses: [198.51.100.0/28]}\n"
        "- {name: b, protocol: layer2, addresses: [198.51.100.8-198.51.100.20]}\n",
        "address-pools[1].addresses[0] (198.51.100.8-198.51.100.20): overlaps "
        "address-pools[0].addresses[0] (198.51.100.0/28) (MetalLB refuses overlapping pools)",
    ),
    (
        "address-pools:\n"
        "- {name: a, protocol: layer2, addresses: [198.51.100.5/30, 198.51.100.4/32]}\n",
        "address-pools[0].addresses[1] (198.51.100.4/32): overlaps address-pools[0].addresses[0]",
    ),
    (
        "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/28]}\n"
        "- {name: b, protocol: bgp, addresses: [10.0.0.8/29]}\n",
        "address-pools[1].addresses[0] (10.0.0.8/29): overlaps",
    ),
    (
        "address-pools: [{name: a, protocol: layer2, addresses: [198.51.100.3]}]",
        "address-pools[0].addresses[0]: invalid CIDR '198.51.100.3': MetalLB takes a single "
        "address as a /32 or /128 (MetalLB refuses it)",
    ),
    (
        "address-pools: [{name: a, protocol: layer2, addresses: [10.0.0.9-10.0.0.1]}]",
        "invalid IP range '10.0.0.9-10.0.0.1': start IP 10.0.0.9 is after the end IP 10.0.0.1",
    ),
    (
        "address-pools: [{name: x, protocol: bgp, addresses: [10.0.0.0/24]}]\n",
        "nothing to convert: no pool with usable addresses; pool 'x': protocol bgp",
    ),
    (
        "address-pools: [{name: x, addresses: [10.0.0.0/24]}]\n",
        "address-pools[0].protocol: missing protocol (MetalLB refuses it)",
    ),
    (
        "address-pools: [{name: x, protocol: l2, addresses: [10.0.0.0/24]}]\n",
        "address-pools[0].protocol: unknown protocol 'l2' (MetalLB refuses it)",
    ),
    (
        "address-pools:\n- {name: x, protocol: layer2, addresses: [10.0.0.0/28]}\n"
        "- {name: x, protocol: layer2, addresses: [10.0.1.0/28]}\n",
        "address-pools[1].name: duplicate definition of pool 'x' (also address-pools[0]; "
        "MetalLB refuses it)",
    ),
    (
        "address-pools: [{name: x, protocol: layer2, addresses: [10.0.0.0/28], "
        "auto-assign: 'no'}]\n",
        "address-pools[0].auto-assign: must be true or false, not str (MetalLB refuses it)",
    ),
    (
        "address-pools: [{name: x, protocol: layer2, addresses: []}]\n",
        "address-pools[0].addresses: pool has no prefixes defined (MetalLB refuses it)",
    ),
    (
        "address-pools: [{name: x, protocol: layer2, addresses: [10.0.0.0/28]}, 7]\n",
        "address-pools[1]: must be a mapping, not int (MetalLB refuses it)",
    ),
    (
        "address-pools:\n- name: a\n  name: b\n  protocol: layer2\n  addresses: [10.0.0.0/28]\n",
        "not valid YAML at line 3, column 3: duplicate key 'name' (first at line 2)",
    ),
    ("- 1\n- 2\n", "a MetalLB config is a mapping with 'address-pools', not list"),
    ("peers: []\n", "the MetalLB config has no 'address-pools'"),
    (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: '{'\n",
        "ConfigMap 'config': data.config: not valid YAML",
    ),
    (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {x: y}\n",
        "no MetalLB configuration in the input (found ConfigMap)",
    ),
    ("a: 1\n---\nb: 2\n", "the input has 2 documents without a kind"),
    (
        "controller: {image: {tag: v0.13.7}}\nspeaker: {frr: {enabled: false}}\n",
        "Helm values without configInline: nothing to convert",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), LEGACY_REFUSED, ids=[m for _, m in LEGACY_REFUSED])
def test_what_metallb_refuses_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert("metallb", text)
    assert message in str(caught.value)


# --- resources (MetalLB 0.13 and later) ---------------------------------------------------


def resource(kind: str, name: str, spec: dict[str, Any] | None = None, **meta: Any) -> str:
    obj: dict[str, Any] = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "metallb-system", **meta},
    }
    if spec is not None:
        obj["spec"] = spec
    return yaml.safe_dump(obj)


def resources(*docs: str) -> str:
    return "---\n".join(docs)


def pool(name: str, addresses: list[str], **spec: Any) -> str:
    labels = spec.pop("labels", None)
    meta = {"labels": labels} if labels else {}
    return resource("IPAddressPool", name, {"addresses": addresses, **spec}, **meta)


def l2(name: str, **spec: Any) -> str:
    return resource("L2Advertisement", name, spec or None)


ZONE_A = {"matchLabels": {"zone": "a"}}
ZONE_B = {"matchLabels": {"zone": "b"}}


def policy(conv: convert.Conversion) -> dict[str, Any]:
    """Each pool's announce policy and admission keys, as written."""
    keys = ("announce", "namespaces", "namespaceSelector", "serviceSelector", "priority")
    return {p["name"]: {k: p[k] for k in keys if k in p} for p in pools_of(conv)}


@pytest.mark.parametrize(
    ("text", "expected", "notes"),
    [
        pytest.param(
            resources(pool("lan", ["198.51.100.0/28"]), l2("all")),
            {"lan": {}},
            [],
            id="an L2Advertisement of every pool on every node: the default, nothing to write",
        ),
        pytest.param(
            resources(pool("lan", ["198.51.100.0/28"])),
            {"lan": {"announce": False}},
            ["IPAddressPool 'lan': no L2Advertisement covers it, so announce: false"],
            id="a pool no L2Advertisement covers is not announced",
        ),
        pytest.param(
            resources(
                pool("a", ["198.51.100.0/28"]),
                pool("b", ["198.51.100.16/28"]),
                l2("only-a", ipAddressPools=["a"], nodeSelectors=[ZONE_A], interfaces=["eth1"]),
            ),
            {"a": {"announce": {"nodeSelector": ZONE_A, "interfaces": ["eth1"]}},
             "b": {"announce": False}},
            ["IPAddressPool 'b': no L2Advertisement covers it"],
            id="ipAddressPools names the pools; nodeSelectors and interfaces become its rule",
        ),
        pytest.param(
            resources(
                pool("a", ["198.51.100.0/28"], labels={"tier": "public"}),
                pool("b", ["198.51.100.16/28"], labels={"tier": "private"}),
                l2("public", ipAddressPoolSelectors=[{"matchLabels": {"tier": "public"}}],
                   nodeSelectors=[ZONE_A, ZONE_B]),
                l2("private", ipAddressPools=["b"], interfaces=["eth2", "eth3"]),
            ),
            {"a": {"announce": {"nodeSelector": [ZONE_A, ZONE_B]}},
             "b": {"announce": {"interfaces": ["eth2", "eth3"]}}},
            [],
            id="ipAddressPoolSelectors select pools by label; several nodeSelectors: any",
        ),
        pytest.param(
            resources(
                pool("a", ["198.51.100.0/28"]),
                l2("edge", nodeSelectors=[ZONE_A], interfaces=["eth1"]),
                l2("core", nodeSelectors=[ZONE_B]),
            ),
            {"a": {"announce": [{"nodeSelector": ZONE_A, "interfaces": ["eth1"]},
                                {"nodeSelector": ZONE_B}]}},
            [],
            id="several L2Advertisements of one pool: one rule each",
        ),
        pytest.param(
            resources(
                pool("a", ["198.51.100.0/28"]),
                l2("x", ipAddressPools=["a"], interfaces=["eth1"]),
                l2("y", ipAddressPools=["a"], interfaces=["eth1"]),
            ),
            {"a": {"announce": {"interfaces": ["eth1"]}}},
            [],
            id="identical advertisements count once, as in MetalLB",
        ),
        pytest.param(
            resources(
                pool("routed", ["203.0.113.0/24"]),
                pool("lan", ["198.51.100.0/28"]),
                resource("BGPAdvertisement", "bgp", {"ipAddressPools": ["routed"],
                                                      "aggregationLength": 32}),
                resource("BGPPeer", "tor", {"myASN": 64500, "peerASN": 64501,
                                            "peerAddress": "10.0.0.1"}),
                l2("lan", ipAddressPools=["lan"]),
            ),
            {"lan": {}},
            [
                "IPAddressPool 'routed': advertised by BGP only (BGPAdvertisement 'bgp'), not "
                "converted; its addresses '203.0.113.0/24' are left out",
                "1 BGPAdvertisement not carried over ('bgp')",
                "1 BGPPeer not carried over ('tor')",
            ],
            id="a pool only BGP advertises is left out; BGP resources are named",
        ),
        pytest.param(
            resources(
                pool("both", ["198.51.100.0/28"]),
                resource("BGPAdvertisement", "bgp", {}),
                l2("l2"),
            ),
            {"both": {}},
            [
                "IPAddressPool 'both': its BGP advertisement ('bgp') is not carried over",
                "1 BGPAdvertisement not carried over ('bgp')",
            ],
            id="a pool advertised by L2 and BGP keeps L2",
        ),
    ],
)  # fmt: skip
def test_metallb_advertisements_become_announce_policies(
    text: str, expected: dict[str, Any], notes: list[str]
) -> None:
    conv = convert.convert("metallb", text)
    assert policy(conv) == expected
    assert_notes(conv, notes)


def test_metallb_resources_keep_addresses_and_flags() -> None:
    conv = convert.convert(
        "metallb",
        resources(
            pool("lan", ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:ccd:e799::/124"],
                 autoAssign=False, avoidBuggyIPs=True),
            pool("odd.name", ["192.168.11.5/30"]),
            l2("all"),
        ),
    )  # fmt: skip
    assert summary(conv) == [
        ("lan", ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:ccd:e799::/124"],
         False, True),
        ("odd-name", ["192.168.11.4/30"], True, False),
    ]  # fmt: skip
    assert_notes(
        conv,
        [
            "IPAddressPool 'odd.name' renamed 'odd-name'",
            "IPAddressPool 'odd.name': '192.168.11.5/30' has host bits set; written as "
            "192.168.11.4/30",
        ],
    )


NS_WEB = {"matchLabels": {"team": "web"}}


@pytest.mark.parametrize(
    ("allocation", "expected", "auto_assign", "notes"),
    [
        pytest.param(
            {"namespaces": ["web", "api"]},
            {"namespaces": ["web", "api"]},
            True,
            [],
            id="namespaces",
        ),
        pytest.param(
            {"namespaceSelectors": [NS_WEB]},
            {"namespaceSelector": NS_WEB},
            True,
            [],
            id="namespaceSelectors: kept as a selector, so new namespaces are admitted too",
        ),
        pytest.param(
            {"namespaces": ["db"], "namespaceSelectors": [NS_WEB, {"matchLabels": {"team": "x"}}],
             "serviceSelectors": [{"matchExpressions": [{"key": "app", "operator": "In",
                                                         "values": ["a", "b"]}]}]},
            {"namespaces": ["db"],
             "namespaceSelector": [NS_WEB, {"matchLabels": {"team": "x"}}],
             "serviceSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                       "values": ["a", "b"]}]}},
            True,
            [],
            id="namespaces or namespace selectors, and service selectors",
        ),
        pytest.param(
            {"namespaces": ["web", "Not_A_Namespace"]},
            {"namespaces": ["web"],
             "namespaceSelector": {"matchExpressions": [
                 {"key": "kubernetes.io/metadata.name", "operator": "In",
                  "values": ["Not_A_Namespace"]}]}},
            True,
            ["IPAddressPool 'p': namespace 'Not_A_Namespace' cannot exist (not a DNS-1123 "
             "label): kept as a namespaceSelector that matches nothing"],
            id="a namespace name that cannot exist still admits nobody, never everybody",
        ),
        pytest.param(
            {"priority": 5},
            {},
            False,
            ["a serviceAllocation without namespaces or selectors: MetalLB never assigns from "
             "this pool by itself, so autoAssign: false"],
            id="a serviceAllocation admitting nobody: MetalLB never auto-assigns from it",
        ),
    ],
)  # fmt: skip
def test_metallb_service_allocation(
    allocation: dict[str, Any], expected: dict[str, Any], auto_assign: bool, notes: list[str]
) -> None:
    conv = convert.convert(
        "metallb",
        resources(pool("p", ["198.51.100.0/28"], serviceAllocation=allocation), l2("all")),
    )
    (written,) = pools_of(conv)
    got = {k: written[k] for k in ("namespaces", "namespaceSelector", "serviceSelector")
           if k in written}  # fmt: skip
    assert got == expected
    assert written["autoAssign"] is auto_assign
    assert_notes(conv, notes)


PRIORITY_NOTE = "a serviceAllocation without priority: MetalLB tries these after the pools with one"
UNPINNED_NOTE = "no serviceAllocation: MetalLB tries these after every pool with one"


@pytest.mark.parametrize(
    ("pools", "priorities", "notes"),
    [
        pytest.param(
            [("a", None), ("b", None)], {"a": 0, "b": 0}, [],
            id="no serviceAllocation anywhere: no priority needed",
        ),
        pytest.param(
            [("low", 1), ("high", 2), ("default", None)],
            {"low": 1, "high": 2, "default": 3},
            [UNPINNED_NOTE],
            id="pools without serviceAllocation come after every pool with one",
        ),
        pytest.param(
            [("none", 0), ("one", 1), ("ten", 10), ("rest", None)],
            {"none": 11, "one": 1, "ten": 10, "rest": 12},
            [PRIORITY_NOTE, UNPINNED_NOTE],
            id="a serviceAllocation without priority: after those with one (the issue's fault)",
        ),
        pytest.param(
            [("pinned", 0), ("rest", None)],
            {"pinned": 0, "rest": 1},
            [UNPINNED_NOTE],
            id="pinned without priority still before the unpinned pools",
        ),
        pytest.param(
            [("neg", -3), ("one", 1)],
            {"neg": 2, "one": 1},
            ["IPAddressPool 'neg': priority -3: MetalLB's order for a priority below 0 is not "
             "defined", PRIORITY_NOTE],
            id="a negative priority: tried with those without",
        ),
    ],
)  # fmt: skip
def test_metallb_priorities_keep_its_order_of_preference(
    pools: list[tuple[str, int | None]], priorities: dict[str, int], notes: list[str]
) -> None:
    docs = []
    for i, (name, priority) in enumerate(pools):
        spec: dict[str, Any] = {}
        if priority is not None:
            spec["serviceAllocation"] = {"priority": priority, "namespaces": ["web"]}
        docs.append(pool(name, [f"198.51.100.{16 * i}/28"], **spec))
    conv = convert.convert("metallb", resources(*docs, l2("all")))
    assert {p["name"]: p.get("priority", 0) for p in pools_of(conv)} == priorities
    assert_notes(conv, notes)


def metallb_order(pools: list[dict[str, Any]], namespace: str) -> list[list[str]]:
    """MetalLB's allocator (Allocate): groups of pools it tries in turn; within a group its
    order is not defined (sort.Slice over a map). Pools pinned to the Service by namespace
    come first, by priority (above 0, lower first; then none), then pools without
    serviceAllocation."""
    pinned = [
        p for p in pools
        if p["auto"] and p["alloc"] is not None and namespace in p["alloc"]["namespaces"]
    ]  # fmt: skip
    groups: dict[int, list[str]] = {}
    for p in pinned:
        priority = p["alloc"]["priority"]
        groups.setdefault(priority if priority > 0 else 10**9, []).append(p["name"])
    ordered = [sorted(groups[k]) for k in sorted(groups)]
    rest = sorted(p["name"] for p in pools if p["auto"] and p["alloc"] is None)
    return ordered + ([rest] if rest else [])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.one_of(st.none(), st.tuples(st.integers(0, 4), st.sampled_from(["web", "db"]))),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_converted_pools_are_tried_in_metallbs_order(
    shapes: list[tuple[bool, tuple[int, str] | None]],
) -> None:
    pools = []
    docs = []
    for i, (auto, alloc) in enumerate(shapes):
        spec: dict[str, Any] = {"autoAssign": auto}
        allocation = None
        if alloc is not None:
            allocation = {"priority": alloc[0], "namespaces": [alloc[1]]}
            spec["serviceAllocation"] = allocation
        pools.append({"name": f"p{i}", "auto": auto, "alloc": allocation})
        docs.append(pool(f"p{i}", [f"198.51.100.{8 * i}/29"], **spec))
    cfg = parsed(convert.convert("metallb", resources(*docs, l2("all"))))
    for namespace in ("web", "db", "other"):
        ours = [p.name for p in cfg.pools_for_namespace(namespace, {}) if p.auto_assign]
        groups = metallb_order(pools, namespace)
        group_of = {name: i for i, group in enumerate(groups) for name in group}
        # ours is MetalLB's groups in MetalLB's order, each in one of its (undefined) orders
        assert sorted(ours) == sorted(group_of)
        assert [group_of[n] for n in ours] == sorted(group_of[n] for n in ours)


RESOURCES_REFUSED = [
    (
        resources(pool("a", ["198.51.100.0/28"], autoassign=False)),
        "IPAddressPool 'a': spec.autoassign: unknown key (the API server refuses it; did you "
        "mean 'autoAssign'?)",
    ),
    (
        resources(pool("a", [])),
        "IPAddressPool 'a': spec.addresses: List should have at least 1 item",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]), pool("a", ["198.51.100.16/28"])),
        "IPAddressPool 'a': duplicate definition of pool (MetalLB refuses it)",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]), pool("b", ["198.51.100.8/29"])),
        "IPAddressPool 'b': spec.addresses[0] (198.51.100.8/29): overlaps IPAddressPool 'a': "
        "spec.addresses[0] (198.51.100.0/28) (MetalLB refuses overlapping pools)",
    ),
    (
        resources(pool("a", ["198.51.100.7"])),
        "IPAddressPool 'a': spec.addresses[0]: invalid CIDR '198.51.100.7'",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"], serviceAllocation={"namespaces": ["x", "x"]})),
        "IPAddressPool 'a': spec.serviceAllocation.namespaces[1]: duplicate definition of "
        "namespace (MetalLB refuses it)",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"], serviceAllocation={
            "serviceSelectors": [{"matchExpressions": [{"key": "k", "operator": "In"}]}]})),
        "IPAddressPool 'a': spec.serviceAllocation.serviceSelectors[0].matchExpressions[0]."
        "values: operator In needs values (MetalLB refuses it)",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]), l2("x", ipAddressPools=["a", "a"])),
        "L2Advertisement 'x': spec.ipAddressPools[1]: duplicate definition of pool",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]), l2("x", nodeSelectors=[ZONE_A, ZONE_A])),
        "L2Advertisement 'x': spec.nodeSelectors[1]: duplicate definition of selector",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]), l2("x", interfaces=["eth 0"])),
        "L2Advertisement 'x': spec.interfaces: 'eth 0' cannot be an interface name",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]), l2("x", interface=["eth0"])),
        "L2Advertisement 'x': spec.interface: unknown key (the API server refuses it; did you "
        "mean 'interfaces'?)",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"]),
                  resource("L2Advertisement", "x", None).replace("metallb-system", "other")),
        "the input has MetalLB resources in namespaces 'metallb-system', 'other'",
    ),
    (
        resources(l2("x")),
        "the input has no IPAddressPool",
    ),
    (
        resources(pool("a", ["198.51.100.0/28"])).replace("metadata:", "metadata:\n  name: b"),
        "duplicate key 'name'",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"), RESOURCES_REFUSED, ids=[m for _, m in RESOURCES_REFUSED]
)
def test_resources_metallb_or_the_api_server_refuses_are_refused(text: str, message: str) -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert("metallb", text)
    assert message in str(caught.value)


CM_BESIDE = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: kube-root-ca.crt, namespace: metallb-system}
  data: {ca.crt: "-----BEGIN CERTIFICATE-----"}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: metallb-excludel2, namespace: metallb-system}
  data: {excludel2.yaml: "announcedInterfacesToExclude: [docker.*]"}
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: lan, namespace: metallb-system}
  spec: {addresses: [198.51.100.0/28]}
"""


def test_resources_beside_unrelated_configmaps_convert_and_say_what_was_ignored() -> None:
    conv = convert.convert("metallb", CM_BESIDE + "- " + l2("all").replace("\n", "\n  "))
    assert summary(conv) == [("lan", ["198.51.100.0/28"], True, False)]
    assert_notes(
        conv,
        [
            "ignored 2 objects that are not MetalLB configuration: ConfigMap 'kube-root-ca.crt', "
            "ConfigMap 'metallb-excludel2'"
        ],
    )


def test_a_legacy_configmap_beside_resources_is_ignored_with_a_note() -> None:
    conv = convert.convert(
        "metallb", resources(pool("lan", ["198.51.100.0/28"]), l2("all"), metallb_configmap(
            "address-pools: [{name: old, protocol: layer2, addresses: [10.0.0.0/24]}]\n"))
    )  # fmt: skip
    assert summary(conv) == [("lan", ["198.51.100.0/28"], True, False)]
    assert_notes(conv, ["1 legacy config(s) ignored: MetalLB 0.13 and later read only"])


def test_of_two_legacy_configmaps_metallbs_own_is_taken() -> None:
    other = metallb_configmap("not: metallb\n").replace("name: config,", "name: grafana,")
    conv = convert.convert("metallb", other + "---\n" + metallb_configmap(METALLB_INNER))
    assert [p["name"] for p in pools_of(conv)] == ["lan"]
    assert_notes(conv, ["ignored ConfigMap 'grafana': data.config: MetalLB reads the ConfigMap"])


# --- properties --------------------------------------------------------------------------

# Addresses within one /24, so coverage can be compared address by address.
octet = st.integers(0, 255)
entry = st.one_of(
    st.tuples(octet, st.sampled_from([24, 25, 26, 28, 30, 32])).map(
        lambda t: str(ipaddress.ip_network(f"10.0.0.{t[0]}/{t[1]}", strict=False))
    ),
    st.tuples(octet, octet).map(lambda t: f"10.0.0.{min(t)}-10.0.0.{max(t)}"),
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
def test_pools_that_do_not_overlap_keep_every_address_and_overlaps_are_refused(
    pools: list[tuple[str, list[str]]],
) -> None:
    inner = yaml.safe_dump(
        {
            "address-pools": [
                {"name": name, "protocol": "layer2", "addresses": addrs} for name, addrs in pools
            ]
        }
    )
    entries = [covered([a]) for _, addrs in pools for a in addrs]
    overlapping = any(a & b for i, a in enumerate(entries) for b in entries[i + 1 :])
    try:
        conv = convert.convert("metallb", inner)
    except convert.ConvertError as exc:
        assert overlapping and "overlaps" in str(exc)
        return
    assert not overlapping
    check_result(conv)
    out = pools_of(conv)
    assert covered([a for p in out for a in p["addresses"]]) == covered(
        [a for _, addrs in pools for a in addrs]
    )
    assert len({p["name"] for p in out}) == len(out)


def test_converted_resources_validate_as_our_config() -> None:
    conv = convert.convert(
        "metallb",
        resources(
            pool("a", ["198.51.100.0/28"], serviceAllocation={"namespaces": ["web"]}),
            l2("x", nodeSelectors=[ZONE_A]),
        ),
    )
    assert document(conv)["pools"][0]["announce"] == {"nodeSelector": ZONE_A}
    check_result(conv)


def test_documents_without_a_kind_beside_resources_are_ignored_with_a_note() -> None:
    conv = convert.convert(
        "metallb", resources(pool("lan", ["198.51.100.0/28"]), l2("all"), "controller: {}\n")
    )
    assert summary(conv) == [("lan", ["198.51.100.0/28"], True, False)]
    assert_notes(conv, ["ignored 1 document(s) without a kind beside the resources"])
