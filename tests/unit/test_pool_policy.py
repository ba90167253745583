"""Per-pool policy: which namespaces get a pool, which nodes announce it and on which interfaces.

The two questions the controller and the speakers ask (``Pool.admits_namespace``,
``PoolConfig.announcing``) are answered from plain values, so they are tables here.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import yaml

from lbctl import config
from lbctl.config import Announcing, Silence


def parse(pool_extra: dict[str, Any], announce: dict[str, Any] | None = None) -> config.PoolConfig:
    doc: dict[str, Any] = {
        "pools": [{"name": "lan", "addresses": ["198.51.100.0/28"], **pool_extra}]
    }
    if announce is not None:
        doc["announce"] = announce
    return config.parse_yaml(yaml.safe_dump(doc))


# --- namespaces -------------------------------------------------------------------------

TEAM = {"matchLabels": {"team": "a"}}
NOT_KUBE = {
    "matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
    ]
}


@pytest.mark.parametrize(
    ("pool", "namespace", "labels", "admitted"),
    [
        pytest.param({}, "any", {}, True, id="no namespaces and no selector admit every namespace"),
        pytest.param({"namespaces": ["web"]}, "web", {}, True, id="a listed namespace is admitted"),
        pytest.param({"namespaces": ["web"]}, "db", {}, False, id="an unlisted one is not"),
        pytest.param(
            {"namespaceSelector": TEAM}, "x", {"team": "a"}, True, id="a matching namespace is in"
        ),
        pytest.param(
            {"namespaceSelector": TEAM}, "x", {"team": "b"}, False, id="a non-matching one is not"
        ),
        pytest.param(
            {"namespaces": ["web"], "namespaceSelector": TEAM},
            "web",
            {},
            True,
            id="listed or selected: the list admits on its own",
        ),
        pytest.param(
            {"namespaces": ["web"], "namespaceSelector": TEAM},
            "x",
            {"team": "a"},
            True,
            id="listed or selected: the selector admits on its own",
        ),
        pytest.param(
            {"namespaceSelector": [TEAM, {"matchLabels": {"team": "b"}}]},
            "x",
            {"team": "b"},
            True,
            id="a list of selectors admits what any of them matches",
        ),
        pytest.param(
            {"namespaceSelector": NOT_KUBE},
            "default",
            {},
            True,
            id="the selector sees the namespace name as kubernetes.io/metadata.name",
        ),
        pytest.param(
            {"namespaceSelector": NOT_KUBE},
            "kube-system",
            {},
            False,
            id="so NotIn on the name keeps a namespace out",
        ),
        pytest.param(
            {"namespaceSelector": {}}, "x", {}, True, id="an empty selector matches everything"
        ),
    ],
)
def test_which_namespaces_a_pool_admits(
    pool: dict[str, Any], namespace: str, labels: dict[str, str], admitted: bool
) -> None:
    cfg = parse(pool)
    assert cfg.pools[0].admits_namespace(namespace, labels) is admitted
    assert (cfg.pools_for_namespace(namespace, labels) == cfg.pools) is admitted


def test_pools_for_a_namespace_keep_the_order_auto_assignment_tries() -> None:
    cfg = config.parse_yaml(
        yaml.safe_dump(
            {
                "pools": [
                    {"name": "shared", "addresses": ["198.51.100.16/28"], "priority": 5},
                    {"name": "web", "addresses": ["198.51.100.0/28"], "namespaces": ["web"]},
                    {"name": "other", "addresses": ["198.51.100.32/28"], "namespaces": ["db"]},
                ]
            }
        )
    )
    assert [p.name for p in cfg.pools_for_namespace("web", {})] == ["web", "shared"]


# --- announcing -------------------------------------------------------------------------

ZONE_A = {"matchLabels": {"zone": "a"}}
ZONE_B = {"matchLabels": {"zone": "b"}}
IP = ipaddress.ip_address("198.51.100.5")


@pytest.mark.parametrize(
    ("pool", "announce", "node", "expected"),
    [
        pytest.param({}, None, {}, Announcing(), id="no policy anywhere: every node, automatic"),
        pytest.param(
            {},
            {"nodeSelector": ZONE_A, "interfaces": ["eth1"]},
            {"zone": "a"},
            Announcing(("eth1",), automatic=False),
            id="no pool policy: the global section decides",
        ),
        pytest.param(
            {},
            {"nodeSelector": ZONE_A},
            {"zone": "b"},
            Silence.NODE_SELECTOR,
            id="the global nodeSelector keeps other nodes out",
        ),
        pytest.param(
            {"announce": True},
            {"interfaces": ["eth9"]},
            {},
            Announcing(("eth9",), automatic=False),
            id="announce: true is the global section too",
        ),
        pytest.param(
            {"announce": False}, None, {}, Silence.NOT_ANNOUNCED, id="announce: false: nobody"
        ),
        pytest.param(
            {"announce": {"nodeSelector": ZONE_A}},
            {"nodeSelector": ZONE_B, "interfaces": ["eth9"]},
            {"zone": "a"},
            Announcing(),
            id="a pool policy replaces the global section (selector and interfaces)",
        ),
        pytest.param(
            {"announce": {"nodeSelector": ZONE_A}},
            None,
            {"zone": "b"},
            Silence.NODE_SELECTOR,
            id="a node its rule does not select stays silent",
        ),
        pytest.param(
            {"announce": {"interfaces": ["eth1", "eth2"]}},
            None,
            {},
            Announcing(("eth1", "eth2"), automatic=False),
            id="a rule without nodeSelector selects every node",
        ),
        pytest.param(
            {
                "announce": [
                    {"nodeSelector": ZONE_A, "interfaces": ["eth1"]},
                    {"nodeSelector": ZONE_B},
                ]
            },
            None,
            {"zone": "b"},
            Announcing(),
            id="rules are alternatives: the one that matches decides",
        ),
        pytest.param(
            {
                "announce": [
                    {"nodeSelector": ZONE_A, "interfaces": ["eth1"]},
                    {"interfaces": ["eth2", "eth1"]},
                ]
            },
            None,
            {"zone": "a"},
            Announcing(("eth1", "eth2"), automatic=False),
            id="the interfaces of every matching rule, each once",
        ),
        pytest.param(
            {"announce": [{"nodeSelector": ZONE_A, "interfaces": ["eth1"]}, {}]},
            None,
            {"zone": "a"},
            Announcing(("eth1",), automatic=True),
            id="a matching rule without interfaces adds the automatic choice",
        ),
        pytest.param(
            {"announce": {"nodeSelector": [ZONE_A, ZONE_B], "interfaces": ["vlan10"]}},
            None,
            {"zone": "b"},
            Announcing(("vlan10",), automatic=False),
            id="a list of node selectors selects what any of them matches",
        ),
    ],
)
def test_which_nodes_announce_a_pool_and_where(
    pool: dict[str, Any],
    announce: dict[str, Any] | None,
    node: dict[str, str],
    expected: Announcing | Silence,
) -> None:
    cfg = parse(pool, announce)
    assert cfg.announcing(IP, node) == expected


def test_an_address_in_no_pool_is_never_announced() -> None:
    cfg = parse({})
    assert cfg.announcing(ipaddress.ip_address("203.0.113.1"), {}) is Silence.NOT_IN_POOL


def test_policies_are_per_pool() -> None:
    cfg = config.parse_yaml(
        yaml.safe_dump(
            {
                "pools": [
                    {"name": "a", "addresses": ["198.51.100.0/28"], "announce": False},
                    {
                        "name": "b",
                        "addresses": ["2001:db8::/64"],
                        "announce": {"nodeSelector": ZONE_A, "interfaces": ["eth1"]},
                    },
                ]
            }
        )
    )
    assert cfg.announcing(IP, {"zone": "a"}) is Silence.NOT_ANNOUNCED
    v6 = ipaddress.ip_address("2001:db8::5")
    assert cfg.announcing(v6, {"zone": "a"}) == Announcing(("eth1",), automatic=False)


# --- strict parsing ---------------------------------------------------------------------

BAD = [
    ({"announce": []}, "pools[0].announce: an empty list announces nothing: write announce: false"),
    ({"announce": "yes"}, "pools[0].announce: must be false, true, a rule"),
    ({"announce": None}, "pools[0].announce: must be false, true, a rule"),
    ({"announce": {"colour": "red"}}, "pools[0].announce.colour: unknown key"),
    ({"announce": [{"interfaces": ["a/b"]}]}, "pools[0].announce[0].interfaces[0]: 'a/b' is not"),
    ({"announce": {"interfaces": "eth0"}}, "pools[0].announce.interfaces: Input should be a valid"),
    (
        {"announce": {"nodeSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}},
        "pools[0].announce.nodeSelector.matchExpressions[0].values: operator In needs values",
    ),
    (
        {"announce": [{}, {"nodeSelector": [{"matchLabels": {"zone": 1}}]}]},
        "pools[0].announce[1].nodeSelector[0].matchLabels.zone: Input should be a valid string",
    ),
    ({"announce": {"nodeSelector": []}}, "pools[0].announce.nodeSelector: an empty list selects"),
    ({"serviceSelector": []}, "pools[0].serviceSelector: an empty list selects nothing"),
    ({"serviceSelector": "app=web"}, "pools[0].serviceSelector: must be a label selector"),
    ({"namespaceSelector": 5}, "pools[0].namespaceSelector: must be a label selector"),
    (
        {"namespaceSelector": [{"matchExpressions": [{"key": "k", "operator": "Exists",
                                                      "values": ["v"]}]}]},
        "pools[0].namespaceSelector[0].matchExpressions[0].values: operator Exists takes no",
    ),
    ({"namespaceSelector": {"matchNames": ["a"]}}, "pools[0].namespaceSelector.matchNames: unkn"),
]  # fmt: skip


@pytest.mark.parametrize(("pool", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_policies_name_the_field_and_entry(pool: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        parse(pool)
    assert message in str(info.value)
