"""The pool ConfigMap: every rule of the strict parse, row by row."""

from __future__ import annotations

import contextlib
import ipaddress
import random

import config_fuzz
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl import config
from lbctl.selectors import Operator

GOOD = """
pools:
  - name: lan
    addresses:
      - 198.51.100.200-198.51.100.250
      - 2001:db8:1::/64
    autoAssign: true
    avoidBuggyIPs: false
    namespaces: []
    serviceSelector: {}
    priority: 0
announce:
  interfaces: []
  nodeSelector: {}
  garp: {rounds: 5, intervalMs: 1100, refreshSeconds: 60}
"""


def test_the_documented_example_parses() -> None:
    cfg = config.parse_yaml(GOOD)
    (pool,) = cfg.pools
    assert pool.name == "lan"
    assert [str(r) for r in pool.ranges] == [
        "198.51.100.200-198.51.100.250",
        "2001:db8:1::/64",
    ]
    assert pool.size(4) == 51 and pool.size(6) == 2**64
    assert cfg.announce.garp == config.Garp(5, 1100, 60)


def test_defaults() -> None:
    cfg = config.parse_yaml("pools: [{name: a, addresses: [198.51.100.7]}]")
    pool = cfg.pools[0]
    assert (pool.auto_assign, pool.avoid_buggy_ips, pool.priority) == (True, False, 0)
    assert pool.namespaces == frozenset() and pool.service_selector.empty
    assert pool.on_conflict is config.OnConflict.HOLD
    assert cfg.announce == config.Announce()


def test_on_conflict_reallocate_is_a_pool_setting() -> None:
    cfg = config.parse_yaml("""
pools:
  - {name: lan, addresses: [198.51.100.0/28], onConflict: reallocate}
  - {name: fixed, addresses: [198.51.100.16/28], onConflict: hold}
""")
    assert cfg.reallocates(ipaddress.ip_address("198.51.100.3"))
    assert not cfg.reallocates(ipaddress.ip_address("198.51.100.17"))
    assert not cfg.reallocates(ipaddress.ip_address("203.0.113.1"))  # in no pool


def test_pools_are_ordered_by_priority_then_name() -> None:
    cfg = config.parse_yaml("""
pools:
  - {name: c, addresses: [198.51.100.3], priority: 1}
  - {name: b, addresses: [198.51.100.2], priority: 0}
  - {name: a, addresses: [198.51.100.1], priority: 1}
""")
    assert [p.name for p in cfg.pools] == ["b", "a", "c"]


def test_selectors_are_parsed() -> None:
    cfg = config.parse_yaml("""
pools:
  - name: a
    addresses: [198.51.100.0/28]
    serviceSelector:
      matchLabels: {tier: web}
      matchExpressions: [{key: env, operator: NotIn, values: [dev]}]
""")
    sel = cfg.pools[0].service_selector
    assert sel.matches({"tier": "web", "env": "prod"})
    assert not sel.matches({"tier": "web", "env": "dev"})
    assert not sel.matches({"env": "prod"})
    (only,) = sel.selectors
    assert only.requirements[1].operator is Operator.NOT_IN


BAD = [
    ("pools: []\nwhen: 2020-13-45", "not valid YAML: month must be in 1..12"),
    (
        'pools: [{name: a, addresses: [198.51.100.1]}]\nannounce: {interfaces: ["e\\x1b"]}',
        "announce.interfaces[0]",
    ),
    ("pools: [{name: a, addresses: [198.51.100.1], colour: red}]", "pools[0].colour: unknown key"),
    ("pools: [{name: a, addresses: [198.51.100.1]}]\nextra: 1", "extra: unknown key"),
    (
        "pools: [{name: a, addresses: [198.51.100.1], autoAssign: maybe}]",
        "pools[0].autoAssign: Input should be a valid boolean",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1], priority: '1'}]",
        "pools[0].priority: Input should be a valid integer",
    ),
    ("pools: [{addresses: [198.51.100.1]}]", "pools[0].name: required"),
    (
        "pools: [{name: a, addresses: [198.51.100.1]}, {name: b, addresses: [198.51.100.2], "
        "onConflict: move}]",
        "pools[1].onConflict: Input should be 'hold' or 'reallocate'",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1], onConflict: true}]",
        "pools[0].onConflict: Input should be 'hold' or 'reallocate'",
    ),
    ("pools: [{name: a, addresses: []}]", "pools[0].addresses: List should have at least 1"),
    (
        "pools: [{name: a, addresses: [198.51.100.300]}]",
        "pools[0].addresses[0]: '198.51.100.300' is not an IP address",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.9-198.51.100.1]}]",
        "pools[0].addresses[0]: '198.51.100.9-198.51.100.1': start 198.51.100.9 is after end",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1-2001:db8::1]}]",
        "pools[0].addresses[0]: '198.51.100.1-2001:db8::1' mixes IPv4 and IPv6",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1/24]}]",
        "pools[0].addresses[0]: '198.51.100.1/24' has host bits set; did you mean 198.51.100.0/24?",
    ),
    (
        "pools: [{name: a, addresses: ['fe80::1%eth0']}]",
        "pools[0].addresses[0]: 'fe80::1%eth0': scoped",
    ),
    (
        "pools: [{name: a, addresses: ['fe80::/64']}]",
        "pools[0].addresses[0]: 'fe80::/64' is a link-local",
    ),
    (
        "pools: [{name: a, addresses: [127.0.0.1]}]",
        "pools[0].addresses[0]: '127.0.0.1' is a loopback",
    ),
    (
        "pools: [{name: a, addresses: [224.0.0.0/4]}]",
        "pools[0].addresses[0]: '224.0.0.0/4' is a multicast",
    ),
    ("pools: [{name: a, addresses: ['']}]", "pools[0].addresses[0]: empty address"),
    ("pools: [{name: A_b, addresses: [198.51.100.1]}]", "pools[0].name: 'A_b' is not a DNS-1123"),
    (
        "pools: [{name: a, addresses: [198.51.100.1]}, {name: a, addresses: [198.51.100.2]}]",
        "pools[1].name: duplicate pool name 'a' (also pools[0])",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.0/28, 198.51.100.10-198.51.100.20]}]",
        "pools[0].addresses[1]: overlaps pools[0].addresses[0] (198.51.100.0/28)",
    ),
    (
        "pools: [{name: a, addresses: [2001:db8::/64]}, {name: b, addresses: ['2001:db8::5']}]",
        "pools[1].addresses[0]: overlaps pools[0].addresses[0] (2001:db8::/64)",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.5]}, {name: b, addresses: [198.51.100.0/24]}]",
        "pools[1].addresses[0]: overlaps pools[0].addresses[0] (198.51.100.5)",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1], namespaces: [Bad_NS]}]",
        "pools[0].namespaces[0]: 'Bad_NS' is not a namespace name",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1], serviceSelector: "
        "{matchExpressions: [{key: k, operator: In}]}}]",
        "pools[0].serviceSelector.matchExpressions[0].values: operator In needs values",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1], serviceSelector: "
        "{matchExpressions: [{key: k, operator: Equals, values: [x]}]}}]",
        "pools[0].serviceSelector.matchExpressions[0].operator: Input should be",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1]}]\nannounce: {garp: {intervalMs: 500}}",
        "announce.garp.intervalMs: Input should be greater than 1000",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1]}]\nannounce: {interfaces: ['a/b']}",
        "announce.interfaces[0]: 'a/b' is not an interface name",
    ),
    ("pools: {name: a}", "pools: Input should be a valid list"),
    ("- just a list", "the config must be a mapping with a 'pools' key, not list"),
    ("", "the config must be a mapping with a 'pools' key, not empty"),
    ("pools: [", "not valid YAML at line 1"),
    (
        "pools: [{name: a, addresses: [198.51.100.1], name: b}]",
        "not valid YAML at line 1, column 46: duplicate key 'name' (first at line 1)",
    ),
    (
        "pools: [{name: a, addresses: [198.51.100.1]}]\nannounce: {}\nannounce: {interfaces: []}",
        "not valid YAML at line 3, column 1: duplicate key 'announce' (first at line 2)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_configs_name_the_field_and_entry(text: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse_yaml(text)
    assert message in str(info.value)


def test_adjacent_ranges_do_not_overlap() -> None:
    cfg = config.parse_yaml(
        "pools: [{name: a, addresses: [198.51.100.0/25]},"
        " {name: b, addresses: [198.51.100.128/25]}]"
    )
    pool = cfg.pool_of(ipaddress.ip_address("198.51.100.128"))
    assert pool is not None and pool.name == "b"


def test_a_configmap_without_the_key_is_an_error() -> None:
    with pytest.raises(config.ConfigError, match=r"no key 'config\.yaml'"):
        config.parse_configmap({"other": "x"})


def test_oversized_configs_are_refused_before_parsing() -> None:
    with pytest.raises(config.ConfigError, match="larger than"):
        config.parse_yaml("#" * (config.MAX_CONFIG_BYTES + 1))


def test_huge_ranges_cost_nothing() -> None:
    cfg = config.parse_yaml("pools: [{name: a, addresses: [10.0.0.0/8, '2001:db8::/32']}]")
    assert cfg.pools[0].size(6) == 2**96


# --- fuzzing: random and mutated configs never escape as anything but a ConfigError ---


@settings(max_examples=1500, deadline=None)
@given(st.randoms(use_true_random=False))
def test_mutated_configs_parse_or_fail_with_the_field_named(rng: random.Random) -> None:
    text = config_fuzz.mutated_text(rng)
    try:
        config.parse_yaml(text)
    except config.ConfigError as exc:
        assert exc.problems
        for path, message in exc.problems:
            assert message
            # A mapping at the top: every problem names its field (or says the YAML is bad).
            assert path or "YAML" in message or "mapping" in message or "ConfigMap" in message
    # anything else propagates and fails the test


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=400))
def test_random_text_is_a_config_error_or_a_config(text: str) -> None:
    with contextlib.suppress(config.ConfigError):
        config.parse_yaml(text)


# --- reservations ------------------------------------------------------------------------

RESERVING = """
pools:
  - {name: lan, addresses: [198.51.100.0/28, "2001:db8:1::/64"], avoidBuggyIPs: true}
  - {name: team, addresses: [203.0.113.10-203.0.113.20], namespaces: [team-a]}
reservations:
%s
"""


def test_reservations_are_parsed_with_their_pool_and_place() -> None:
    cfg = config.parse_yaml(
        RESERVING
        % """
  - {address: 198.51.100.5, service: default/web}
  - {address: "2001:db8:1::5", service: default/web}
  - {address: 203.0.113.12, service: team-a/api}
"""
    )
    web4, web6, api = cfg.reservations
    assert (str(web4.address), web4.service, web4.pool, web4.label) == (
        "198.51.100.5",
        "default/web",
        "lan",
        "reservations[0]",
    )
    assert cfg.reservations_for("default/web") == (web4, web6)
    assert cfg.reservation_of(ipaddress.ip_address("203.0.113.12")) == api
    assert cfg.reservation_of(ipaddress.ip_address("203.0.113.13")) is None
    assert cfg.reserved_values(4) == {int(web4.address), int(api.address)}
    assert config.unusable_reservations(cfg) == []


def test_no_reservations_is_the_default() -> None:
    assert config.parse_yaml("pools: [{name: a, addresses: [198.51.100.7]}]").reservations == ()


def entries(*pairs: tuple[str, object]) -> str:
    """The YAML list of reservations ``(address, service)``."""
    return "\n".join(f"  - {{address: '{a}', service: {s}}}" for a, s in pairs)


WEB = "default/web"

# Each row: the reservations list, and the error naming the entry.
BAD_RESERVATIONS = [
    (entries(("198.51.100.99", WEB)), "reservations[0].address: 198.51.100.99 is in no pool"),
    (
        entries(("198.51.100.0/30", WEB)),
        "reservations[0].address: '198.51.100.0/30' must be one address, not a range",
    ),
    (entries(("198.51.100.1-198.51.100.2", WEB)), "must be one address, not a range"),
    (entries(("nope", WEB)), "reservations[0].address: 'nope' is not an IP address"),
    (
        entries(("198.51.100.0", WEB)),
        "reservations[0].address: 198.51.100.0 ends in .0 or .255 and pool 'lan' has avoidBuggyIPs",
    ),
    (
        entries(("198.51.100.5", "default/a"), ("198.51.100.5", "default/b")),
        "reservations[1].address: 198.51.100.5 is reserved twice (also reservations[0])",
    ),
    (
        entries(("2001:db8:1::5", "default/a"), ("2001:db8:1:0::5", "default/b")),
        "reservations[1].address: 2001:db8:1::5 is reserved twice (also reservations[0])",
    ),
    (
        entries(("198.51.100.5", WEB), ("198.51.100.6", WEB)),
        "reservations[1].service: default/web has an IPv4 reservation already (reservations[0])",
    ),
    (entries(("198.51.100.5", "web")), "reservations[0].service: 'web' must be namespace/name"),
    (entries(("198.51.100.5", "a/b/c")), "reservations[0].service: 'a/b/c' must be namespace/name"),
    (
        entries(("198.51.100.5", "Bad_NS/web")),
        "reservations[0].service: 'Bad_NS' is not a namespace name",
    ),
    (
        entries(("198.51.100.5", "default/9web")),
        "reservations[0].service: '9web' is not a Service name",
    ),
    (entries(("198.51.100.5", "default/")), "reservations[0].service: '' is not a Service name"),
    (
        entries(("198.51.100.5", "[default, web]")),
        "reservations[0].service: Input should be a valid string",
    ),
    ("  - {address: 198.51.100.5}", "reservations[0].service: required"),
    (
        "  - {address: 198.51.100.5, service: default/web, pool: lan}",
        "reservations[0].pool: unknown key",
    ),
    (
        "  {address: 198.51.100.5, service: default/web}",
        "reservations: Input should be a valid list",
    ),
]


@pytest.mark.parametrize(
    ("listed", "message"), BAD_RESERVATIONS, ids=[m for _, m in BAD_RESERVATIONS]
)
def test_bad_reservations_name_the_entry(listed: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse_yaml(RESERVING % listed)
    assert message in str(info.value)


def test_one_service_may_hold_one_reservation_per_family() -> None:
    cfg = config.parse_yaml(
        RESERVING
        % """
  - {address: 198.51.100.5, service: default/web}
  - {address: "2001:db8:1::5", service: default/web}
"""
    )
    assert [r.address.version for r in cfg.reservations_for("default/web")] == [4, 6]


def test_a_reservation_its_pool_refuses_by_namespace_is_valid_but_said_to_be_unusable() -> None:
    cfg = config.parse_yaml(
        RESERVING
        % """
  - {address: 203.0.113.12, service: team-a/api}
  - {address: 203.0.113.13, service: default/web}
"""
    )
    ((reservation, why),) = config.unusable_reservations(cfg)
    assert reservation.label == "reservations[1]"
    assert (
        why == "pool 'team' admits only namespaces team-a: default/web will be refused 203.0.113.13"
    )


NS_POOLS = """
pools:
  - {name: listed, addresses: [198.51.100.1], namespaces: [team-a]}
  - name: all-but
    addresses: [198.51.100.2]
    namespaceSelector:
      matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [team-a]}]
  - {name: labelled, addresses: [198.51.100.3], namespaceSelector: {matchLabels: {env: prod}}}
  - name: either
    addresses: [198.51.100.4]
    namespaces: [team-a]
    namespaceSelector: {matchLabels: {env: prod}}
  - {name: open, addresses: [198.51.100.5]}
"""

# Each row: the pool, the namespace, and the refusal judged from the namespace's name alone.
NAMESPACE_REFUSALS = [
    ("listed", "team-a", None),
    ("listed", "shop", "pool 'listed' admits only namespaces team-a"),
    ("all-but", "shop", None),
    (
        "all-but",
        "team-a",
        "pool 'all-but' admits only namespaces matching kubernetes.io/metadata.name notin (team-a)",
    ),
    ("labelled", "shop", None),  # only the namespace's labels can tell
    ("either", "shop", None),  # namespaces or a selector on labels: cannot tell
    ("open", "shop", None),
]


@pytest.mark.parametrize(
    ("pool", "namespace", "why"),
    NAMESPACE_REFUSALS,
    ids=[f"{p} for {n}: {w or 'cannot refuse'}" for p, n, w in NAMESPACE_REFUSALS],
)
def test_a_namespace_refusal_is_judged_from_the_name_alone(
    pool: str, namespace: str, why: str | None
) -> None:
    checked = config.parse_yaml(NS_POOLS).pool(pool)
    assert checked is not None
    assert config.namespace_refusal(checked, namespace) == why
