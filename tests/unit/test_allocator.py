"""The allocator's rules, one sentence per row; then properties over random histories."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl import config
from lbctl.allocator import (
    Allocator,
    FamilyPolicy,
    Outcome,
    Port,
    Reason,
    ServiceKey,
    ServiceRequest,
)

CFG = config.parse_yaml("""
pools:
  - name: lan
    addresses: [198.51.100.10-198.51.100.12, "2001:db8:1::/126"]
  - name: manual
    addresses: [198.51.100.100-198.51.100.101]
    autoAssign: false
  - name: team
    addresses: [198.51.100.200]
    namespaces: [team-a]
  - name: web
    addresses: [203.0.113.0/30]
    avoidBuggyIPs: true
    serviceSelector: {matchLabels: {tier: web}}
    priority: 5
""")


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def svc(name: str, ns: str = "default", age: int = 0, **kw: object) -> ServiceRequest:
    return ServiceRequest(
        key=ServiceKey(f"{ns}/{name}"), namespace=ns, created=f"2026-01-01T00:00:{age:02d}Z", **kw
    )  # type: ignore[arg-type]


def ips(*texts: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    return tuple(ip(t) for t in texts)


def tcp(*ports: int) -> frozenset[Port]:
    return frozenset(Port("TCP", p) for p in ports)


def assert_decides(
    alloc: Allocator,
    before: list[ServiceRequest],
    subject: ServiceRequest,
    outcome: Outcome,
    expected: list[str],
    reason: Reason | None,
) -> None:
    """A table row: after ``before`` got addresses, ``subject`` gets what the row says."""
    for earlier in before:
        assert alloc.decide(earlier).outcome is not Outcome.PENDING
    decision = alloc.decide(subject)
    assert decision.outcome is outcome
    assert [str(i) for i in decision.ips] == expected
    assert (decision.problem.reason if decision.problem else None) is reason
    assert alloc.assigned(subject.key) == decision.ips


# Each row: earlier Services (decided in order), the Service under test, and what it gets.
ROWS = [
    (
        "a new Service gets the first free address of the first auto pool",
        [],
        svc("a"),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
    (
        "the next Service gets the next address",
        [svc("a")],
        svc("b", age=1),
        Outcome.ALLOCATED,
        ["198.51.100.11"],
        None,
    ),
    (
        "a Service keeps its valid current address",
        [],
        svc("a", current=ips("198.51.100.12")),
        Outcome.KEPT,
        ["198.51.100.12"],
        None,
    ),
    (
        "a requested address in a manual pool is given",
        [],
        svc("a", requested_ips=ips("198.51.100.101")),
        Outcome.ALLOCATED,
        ["198.51.100.101"],
        None,
    ),
    (
        "a requested pool is used even when it is not auto-assigned",
        [],
        svc("a", requested_pool="manual"),
        Outcome.ALLOCATED,
        ["198.51.100.100"],
        None,
    ),
    (
        "a requested pool that does not exist leaves the Service pending",
        [],
        svc("a", requested_pool="nope"),
        Outcome.PENDING,
        [],
        Reason.POOL_NOT_FOUND,
    ),
    (
        "a namespace-restricted pool refuses other namespaces",
        [],
        svc("a", requested_pool="team"),
        Outcome.PENDING,
        [],
        Reason.POOL_NOT_ADMITTED,
    ),
    (
        "a namespace-restricted pool admits its namespace",
        [],
        svc("a", ns="team-a", requested_pool="team"),
        Outcome.ALLOCATED,
        ["198.51.100.200"],
        None,
    ),
    (
        "a requested address outside every pool is refused",
        [],
        svc("a", requested_ips=ips("198.51.100.99")),
        Outcome.PENDING,
        [],
        Reason.NOT_IN_ANY_POOL,
    ),
    (
        "a requested address in a pool that does not admit the Service is refused",
        [],
        svc("a", requested_ips=ips("198.51.100.200")),
        Outcome.PENDING,
        [],
        Reason.NOT_ADMITTED,
    ),
    (
        "a requested address held by an older Service is refused",
        [svc("a", requested_ips=ips("198.51.100.11"))],
        svc("b", age=1, requested_ips=ips("198.51.100.11")),
        Outcome.PENDING,
        [],
        Reason.IN_USE,
    ),
    (
        "a requested address outside the requested pool is refused",
        [],
        svc("a", requested_ips=ips("198.51.100.10"), requested_pool="manual"),
        Outcome.PENDING,
        [],
        Reason.NOT_REQUESTED,
    ),
    (
        "a selector pool with higher priority number is tried after the default pool",
        [],
        svc("a", labels={"tier": "web"}),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
    (
        "a selector pool serves matching Services when the default pool is full",
        [svc("x"), svc("y"), svc("z")],
        svc("a", age=9, labels={"tier": "web"}),
        Outcome.ALLOCATED,
        ["203.0.113.1"],
        None,
    ),
    (
        "a full pool leaves a Service pending, saying so",
        [svc("x"), svc("y"), svc("z")],
        svc("a", age=9),
        Outcome.PENDING,
        [],
        Reason.EXHAUSTED,
    ),
    (
        "a SingleStack IPv6 Service gets an IPv6 address",
        [],
        svc("a", families=(6,)),
        Outcome.ALLOCATED,
        ["2001:db8:1::"],
        None,
    ),
    (
        "a PreferDualStack Service gets one address per family, primary first",
        [],
        svc("a", families=(6, 4), family_policy=FamilyPolicy.PREFER_DUAL),
        Outcome.ALLOCATED,
        ["2001:db8:1::", "198.51.100.10"],
        None,
    ),
    (
        "a RequireDualStack Service with a family no pool has stays pending",
        [],
        svc("a", ns="team-a", requested_pool="team", family_policy=FamilyPolicy.REQUIRE_DUAL),
        Outcome.PENDING,
        [],
        Reason.NO_POOL_FOR_FAMILY,
    ),
    (
        "a PreferDualStack Service takes what it can",
        [],
        svc("a", ns="team-a", requested_pool="team", family_policy=FamilyPolicy.PREFER_DUAL),
        Outcome.ALLOCATED,
        ["198.51.100.200"],
        Reason.NO_POOL_FOR_FAMILY,
    ),
    (
        "two requested addresses of one family are refused",
        [],
        svc("a", requested_ips=ips("198.51.100.10", "198.51.100.11")),
        Outcome.PENDING,
        [],
        Reason.BAD_REQUEST,
    ),
    (
        "a requested address of a family the Service does not have is refused",
        [],
        svc("a", requested_ips=ips("2001:db8:1::1")),
        Outcome.PENDING,
        [],
        Reason.BAD_REQUEST,
    ),
    (
        "a Service the adapter could not read is pending with the adapter's words",
        [],
        svc("a", problem="bad annotation"),
        Outcome.PENDING,
        [],
        Reason.BAD_REQUEST,
    ),
    (
        "a Service the adapter could not read keeps a valid address: a typo loses nothing",
        [],
        svc("a", problem="bad annotation", current=ips("198.51.100.11")),
        Outcome.KEPT,
        ["198.51.100.11"],
        Reason.BAD_REQUEST,
    ),
    (
        "sharing: same key, different ports share one address",
        [svc("a", sharing_key="k", ports=tcp(80))],
        svc("b", age=1, sharing_key="k", ports=tcp(443)),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
    (
        "sharing: TCP/53 and UDP/53 may share",
        [svc("a", sharing_key="k", ports=tcp(53))],
        svc("b", age=1, sharing_key="k", ports=frozenset([Port("UDP", 53)])),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
    (
        "sharing: the same port twice may not share",
        [svc("a", sharing_key="k", ports=tcp(80))],
        svc("b", age=1, sharing_key="k", ports=tcp(80)),
        Outcome.ALLOCATED,
        ["198.51.100.11"],
        None,
    ),
    (
        "sharing: different keys never share a requested address",
        [svc("a", sharing_key="k", ports=tcp(80))],
        svc("b", age=1, sharing_key="j", ports=tcp(443), requested_ips=ips("198.51.100.10")),
        Outcome.PENDING,
        [],
        Reason.IN_USE,
    ),
    (
        "sharing: Local policy with different selectors may not share",
        [svc("a", sharing_key="k", ports=tcp(80), cluster_traffic=False, selector=(("app", "a"),))],
        svc(
            "b",
            age=1,
            sharing_key="k",
            ports=tcp(443),
            cluster_traffic=False,
            selector=(("app", "b"),),
            requested_ips=ips("198.51.100.10"),
        ),
        Outcome.PENDING,
        [],
        Reason.IN_USE,
    ),
    (
        "sharing: Local policy with identical selectors may share",
        [svc("a", sharing_key="k", ports=tcp(80), cluster_traffic=False, selector=(("app", "a"),))],
        svc(
            "b",
            age=1,
            sharing_key="k",
            ports=tcp(443),
            cluster_traffic=False,
            selector=(("app", "a"),),
        ),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
    (
        "avoidBuggyIPs skips .0 in its pool",
        [],
        svc("a", requested_pool="web", labels={"tier": "web"}),
        Outcome.ALLOCATED,
        ["203.0.113.1"],
        None,
    ),
    (
        "avoidBuggyIPs refuses a requested .0 of its pool",
        [],
        svc("a", labels={"tier": "web"}, requested_ips=ips("203.0.113.0")),
        Outcome.PENDING,
        [],
        Reason.BUGGY_IP,
    ),
    (
        "avoidBuggyIPs takes a kept .0 away and hands out the next good address",
        [],
        svc("a", labels={"tier": "web"}, requested_pool="web", current=ips("203.0.113.0")),
        Outcome.ALLOCATED,
        ["203.0.113.1"],
        None,
    ),
]


@pytest.mark.parametrize(
    ("title", "before", "subject", "outcome", "expected", "reason"), ROWS, ids=[r[0] for r in ROWS]
)
def test_rules(
    title: str,
    before: list[ServiceRequest],
    subject: ServiceRequest,
    outcome: Outcome,
    expected: list[str],
    reason: Reason | None,
) -> None:
    assert_decides(Allocator(CFG), before, subject, outcome, expected, reason)


BUGGY = config.parse_yaml("pools: [{name: lan, avoidBuggyIPs: true, addresses: [198.18.4.0/24]}]")
PLAIN = config.parse_yaml("pools: [{name: lan, addresses: [198.18.3.0/24, 198.18.4.0/24]}]")


BUGGY_ROWS = [
    ("a requested .0 of a pool that avoids buggy IPs is refused", "198.18.4.0", Reason.BUGGY_IP),
    ("a requested .255 of it is refused", "198.18.4.255", Reason.BUGGY_IP),
    ("a requested .1 of it is given", "198.18.4.1", None),
]


@pytest.mark.parametrize(
    ("title", "requested", "reason"), BUGGY_ROWS, ids=[r[0] for r in BUGGY_ROWS]
)
def test_avoid_buggy_ips_applies_to_requested_addresses(
    title: str, requested: str, reason: Reason | None
) -> None:
    d = Allocator(BUGGY).decide(svc("a", requested_ips=ips(requested)))
    assert (d.problem.reason if d.problem else None) is reason
    assert d.ips == (() if reason else ips(requested))
    if reason:
        assert d.problem is not None and "avoidBuggyIPs" in d.problem.message


def test_a_kept_buggy_address_is_released_with_a_reason_when_the_pool_starts_avoiding_them() -> (
    None
):
    alloc = Allocator(PLAIN)
    held = svc("a", requested_pool="lan", current=ips("198.18.3.0"))
    assert alloc.decide(held).outcome is Outcome.KEPT
    alloc.set_config(
        config.parse_yaml("pools: [{name: lan, avoidBuggyIPs: true, addresses: [198.18.3.0/24]}]")
    )
    d = alloc.decide(held)
    assert d.ips == ips("198.18.3.1")
    assert [(str(c.ip), c.reason) for c in d.cleared] == [("198.18.3.0", Reason.BUGGY_IP)]


def test_restore_does_not_claim_a_buggy_address() -> None:
    assert Allocator(BUGGY).restore(svc("a", current=ips("198.18.4.255"))) == ()


# --- who loses when two holders stop being able to share ---------------------------------

LOCAL = {"cluster_traffic": False, "selector": (("app", "backend"),)}
S3 = svc("s3", age=3, sharing_key="share", ports=tcp(80), current=ips("198.51.100.11"), **LOCAL)
S4 = svc("s4", age=4, sharing_key="share", ports=tcp(443), current=ips("198.51.100.11"), **LOCAL)

# Each row: the Service that changes (s3 is the older), how, and what it ends with; the other
# one changed nothing and keeps 198.51.100.11 in every row.
CHANGES = [
    (
        "the older s3 changes its sharing key: s3 moves",
        S3,
        {"sharing_key": "other"},
        ["198.51.100.10"],
    ),
    (
        "the older s3 changes its selector: s3 moves",
        S3,
        {"selector": (("app", "x"),)},
        ["198.51.100.10"],
    ),
    ("the older s3 takes a port s4 uses: s3 moves", S3, {"ports": tcp(80, 443)}, ["198.51.100.10"]),
    (
        "the younger s4 changes its sharing key: s4 moves",
        S4,
        {"sharing_key": "other"},
        ["198.51.100.10"],
    ),
    (
        "s3 requesting the shared address changes its key: s3 is refused, in use",
        S3,
        {"sharing_key": "other", "requested_ips": ips("198.51.100.11")},
        [],
    ),
]


@pytest.mark.parametrize(
    ("title", "changer", "change", "gets"), CHANGES, ids=[r[0] for r in CHANGES]
)
def test_the_service_that_changes_into_a_conflict_is_refused_not_the_bystander(
    title: str, changer: ServiceRequest, change: dict[str, object], gets: list[str]
) -> None:
    alloc = Allocator(CFG)
    for s in (S3, S4):
        assert alloc.decide(s).outcome is Outcome.KEPT
    bystander = S4 if changer is S3 else S3
    d = alloc.decide(replace(changer, **change))  # type: ignore[arg-type]
    assert [str(i) for i in d.ips] == gets
    assert d.evicted == ()
    assert [(str(c.ip), c.reason) for c in d.cleared] == [("198.51.100.11", Reason.IN_USE)]
    assert alloc.assigned(bystander.key) == ips("198.51.100.11")
    assert alloc.decide(bystander).outcome is Outcome.KEPT  # and it stays so when re-decided


def test_restore_lets_compatible_sharers_all_reclaim_their_address() -> None:
    alloc = Allocator(CFG)
    assert alloc.restore(S3) == ips("198.51.100.11")
    assert alloc.restore(S4) == ips("198.51.100.11")
    assert alloc.holders(ip("198.51.100.11")) == {S3.key, S4.key}


def test_a_node_address_is_never_handed_out() -> None:
    alloc = Allocator(CFG, reserved={ip("198.51.100.10"): "node1"})
    assert alloc.decide(svc("a")).ips == ips("198.51.100.11")
    refused = alloc.decide(svc("b", requested_ips=ips("198.51.100.10")))
    assert refused.problem is not None and "node node1" in refused.problem.message


def test_a_current_address_that_became_a_node_address_is_cleared_and_replaced() -> None:
    alloc = Allocator(CFG, reserved={ip("198.51.100.10"): "node1"})
    d = alloc.decide(svc("a", current=ips("198.51.100.10")))
    assert d.ips == ips("198.51.100.11")
    assert [(str(c.ip), c.reason) for c in d.cleared] == [("198.51.100.10", Reason.NODE_ADDRESS)]


def test_released_addresses_are_reusable_at_once() -> None:
    alloc = Allocator(CFG)
    alloc.decide(svc("a"))
    alloc.release(ServiceKey("default/a"))
    assert alloc.decide(svc("b")).ips == ips("198.51.100.10")


def test_an_address_that_leaves_every_pool_is_cleared_and_replaced() -> None:
    alloc = Allocator(CFG)
    alloc.decide(svc("a"))  # 198.51.100.10
    alloc.set_config(config.parse_yaml("pools: [{name: lan, addresses: [198.51.100.20/31]}]"))
    d = alloc.decide(svc("a", current=ips("198.51.100.10")))
    assert d.outcome is Outcome.ALLOCATED and d.ips == ips("198.51.100.20")
    assert d.cleared[0].reason is Reason.NOT_IN_ANY_POOL


def test_two_claims_on_one_address_the_older_keeps_it_and_the_younger_is_evicted() -> None:
    alloc = Allocator(CFG)
    young = svc("young", age=5, current=ips("198.51.100.12"))
    alloc.decide(young)
    old = svc("old", age=1, current=ips("198.51.100.12"))
    d = alloc.decide(old)
    assert d.ips == ips("198.51.100.12") and d.evicted == (ServiceKey("default/young"),)
    assert alloc.assigned(young.key) == ()
    again = alloc.decide(young)
    assert again.ips == ips("198.51.100.10")
    assert again.cleared[0].reason is Reason.IN_USE


def test_restore_claims_status_addresses_before_anything_new_is_allocated() -> None:
    alloc = Allocator(CFG)
    status = [
        svc("a", age=1, current=ips("198.51.100.10")),
        svc("b", age=2, current=ips("198.51.100.11")),
        svc("c", age=3),
    ]
    for s in status:
        alloc.restore(s)
    decisions = [alloc.decide(s) for s in reversed(status)]  # worst order: newest first
    assert [d.ips for d in decisions] == [
        ips("198.51.100.12"),
        ips("198.51.100.11"),
        ips("198.51.100.10"),
    ]


def test_restore_gives_a_contested_address_to_the_older_service() -> None:
    alloc = Allocator(CFG)
    older, younger = (svc(n, age=a, current=ips("198.51.100.10")) for n, a in (("o", 1), ("y", 2)))
    assert alloc.restore(older) == ips("198.51.100.10")
    assert alloc.restore(younger) == ()


def test_without_a_config_nothing_is_allocated_and_nothing_is_taken_away() -> None:
    alloc = Allocator(None)
    assert alloc.decide(svc("a")).problem.reason is Reason.NO_CONFIG  # type: ignore[union-attr]
    kept = alloc.decide(svc("b", current=ips("198.51.100.10")))
    assert kept.outcome is Outcome.UNCHANGED_NO_CONFIG and kept.ips == ips("198.51.100.10")


def test_a_huge_ipv6_pool_allocates_without_enumerating() -> None:
    alloc = Allocator(config.parse_yaml("pools: [{name: big, addresses: ['2001:db8::/32']}]"))
    got = [alloc.decide(svc(f"s{i}", families=(6,), age=i)).ips[0] for i in range(200)]
    assert len(set(got)) == 200


def test_in_use_counts_per_pool_and_family() -> None:
    alloc = Allocator(CFG)
    alloc.decide(svc("a", families=(4, 6), family_policy=FamilyPolicy.REQUIRE_DUAL))
    lan = CFG.pool("lan")
    assert lan is not None
    assert (alloc.in_use(lan, 4), alloc.in_use(lan, 6)) == (1, 1)


# --- properties over random histories ---------------------------------------------------

SMALL = config.parse_yaml("""
pools:
  - {name: p1, addresses: [198.51.100.1-198.51.100.4, "2001:db8::/126"]}
  - {name: p2, addresses: [198.51.100.8-198.51.100.9], namespaces: [b]}
  - {name: p3, addresses: [198.51.100.16], autoAssign: false}
""")

request_st = st.builds(
    lambda name, ns, age, fam, pol, key, port, req, pool: svc(
        name,
        ns=ns,
        age=age,
        families=fam,
        family_policy=pol,
        sharing_key=key,
        ports=tcp(port),
        requested_ips=req,
        requested_pool=pool,
    ),
    name=st.sampled_from("abcdefgh"),
    ns=st.sampled_from(["a", "b"]),
    age=st.integers(0, 59),
    fam=st.sampled_from([(4,), (6,), (4, 6)]),
    pol=st.sampled_from(list(FamilyPolicy)),
    key=st.sampled_from([None, "k"]),
    port=st.sampled_from([80, 443]),
    req=st.sampled_from(
        [(), ips("198.51.100.1"), ips("198.51.100.16"), ips("198.51.100.8"), ips("2001:db8::1")]
    ),
    pool=st.sampled_from([None, None, "p1", "p2", "p3"]),
)
step_st = st.one_of(
    st.tuples(st.just("decide"), request_st),
    st.tuples(st.just("release"), st.sampled_from("abcdefgh")),
    st.tuples(
        st.just("status-edit"),
        request_st,
        st.sampled_from(ips("198.51.100.1", "198.51.100.2", "198.51.100.9", "198.51.100.50")),
    ),
)


def check_invariants(alloc: Allocator, latest: dict[ServiceKey, ServiceRequest]) -> None:
    holders: dict[object, list[ServiceKey]] = {}
    for key, held in alloc.all_assignments().items():
        for address in held:
            holders.setdefault(address, []).append(key)
            pool = SMALL.pool_of(address)
            assert pool is not None, f"{address} held by {key} is in no pool"
            req = latest[key]
            assert not pool.namespaces or req.namespace in pool.namespaces
    for address, keys in holders.items():
        if len(keys) > 1:
            reqs = [latest[k] for k in keys]
            assert all(r.sharing_key == "k" for r in reqs), (address, keys)
            ports = [p for r in reqs for p in r.ports]
            assert len(ports) == len(set(ports)), (address, keys)


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=40))
def test_no_address_is_ever_held_twice_unless_sharing_allows_and_all_lie_in_admitting_pools(
    steps: list[tuple],  # type: ignore[type-arg]
) -> None:
    alloc = Allocator(SMALL)
    latest: dict[ServiceKey, ServiceRequest] = {}
    for step in steps:
        if step[0] == "release":
            alloc.release(ServiceKey(f"a/{step[1]}"))
            alloc.release(ServiceKey(f"b/{step[1]}"))
            latest.pop(ServiceKey(f"a/{step[1]}"), None)
            latest.pop(ServiceKey(f"b/{step[1]}"), None)
            continue
        req = step[1]
        if step[0] == "status-edit":
            req = replace(req, current=(step[2],))
        else:
            req = replace(req, current=alloc.assigned(req.key))
        latest[req.key] = req
        decision = alloc.decide(req)
        for evicted in decision.evicted:  # the controller re-decides evicted Services
            latest[evicted] = replace(latest[evicted], current=alloc.assigned(evicted))
            alloc.decide(latest[evicted])
        check_invariants(alloc, latest)


@settings(max_examples=200, deadline=None)
@given(st.lists(request_st, min_size=1, max_size=12, unique_by=lambda r: r.key))
def test_valid_assignments_never_move_when_decided_again(reqs: list[ServiceRequest]) -> None:
    alloc = Allocator(SMALL)
    for r in reqs:
        d = alloc.decide(replace(r, current=alloc.assigned(r.key)))
        assert d.evicted == ()  # requests never push out a holder; only older claims do
    settled = {r.key: alloc.assigned(r.key) for r in reqs}
    for r in reversed(reqs):
        d = alloc.decide(replace(r, current=settled[r.key]))
        assert d.ips == settled[r.key]
        assert d.outcome is (Outcome.KEPT if d.ips else Outcome.PENDING)


# --- reservations ------------------------------------------------------------------------

RES = config.parse_yaml("""
pools:
  - name: lan
    addresses: [198.51.100.10-198.51.100.13, "2001:db8:1::/126"]
  - name: manual
    addresses: [198.51.100.100-198.51.100.101]
    autoAssign: false
  - name: team
    addresses: [198.51.100.200-198.51.100.201]
    namespaces: [team-a]
reservations:
  - {address: 198.51.100.12, service: default/web}
  - {address: "2001:db8:1::2", service: default/web}
  - {address: 198.51.100.101, service: default/db}
  - {address: 198.51.100.201, service: default/intruder}
""")

# Each row: earlier Services (decided in order), the Service under test, and what it gets.
RESERVATION_ROWS = [
    (
        "a reserved address is not handed to another Service",
        [svc("a"), svc("b", age=1)],
        svc("c", age=2),
        Outcome.ALLOCATED,
        ["198.51.100.13"],
        None,
    ),
    (
        "the named Service gets its reserved address with no annotation",
        [],
        svc("web"),
        Outcome.ALLOCATED,
        ["198.51.100.12"],
        None,
    ),
    (
        "the named Service gets its reserved address though lower ones are free",
        [svc("a")],
        svc("web", age=1),
        Outcome.ALLOCATED,
        ["198.51.100.12"],
        None,
    ),
    (
        "a Service that asks for another's reserved address is refused",
        [],
        svc("a", requested_ips=ips("198.51.100.12")),
        Outcome.PENDING,
        [],
        Reason.RESERVED,
    ),
    (
        "a Service that asks for a reserved address of a manual pool is refused",
        [],
        svc("a", requested_ips=ips("198.51.100.101")),
        Outcome.PENDING,
        [],
        Reason.RESERVED,
    ),
    (
        "a reserved address is not shared, even under the holder's sharing key",
        [svc("web", sharing_key="k", ports=tcp(80))],
        svc("b", age=1, sharing_key="k", ports=tcp(443)),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
    (
        "a reserved address in a manual pool goes to its Service",
        [],
        svc("db"),
        Outcome.ALLOCATED,
        ["198.51.100.101"],
        None,
    ),
    (
        "a full pool does not give up a reserved address",
        [svc("a"), svc("b", age=1), svc("c", age=2)],
        svc("d", age=3),
        Outcome.PENDING,
        [],
        Reason.EXHAUSTED,
    ),
    (
        "a reservation in a pool that does not admit the Service's namespace is refused",
        [],
        svc("intruder"),
        Outcome.PENDING,
        [],
        Reason.NOT_ADMITTED,
    ),
    (
        "a PreferDualStack Service gets its reserved address of each family",
        [],
        svc("web", families=(4, 6), family_policy=FamilyPolicy.PREFER_DUAL),
        Outcome.ALLOCATED,
        ["198.51.100.12", "2001:db8:1::2"],
        None,
    ),
    (
        "an IPv6 Service gets its IPv6 reservation and ignores the IPv4 one",
        [],
        svc("web", families=(6,)),
        Outcome.ALLOCATED,
        ["2001:db8:1::2"],
        None,
    ),
    (
        "a family without a reservation is allocated as usual",
        [],
        svc("db", families=(4, 6), family_policy=FamilyPolicy.REQUIRE_DUAL),
        Outcome.ALLOCATED,
        ["198.51.100.101", "2001:db8:1::"],
        None,
    ),
    (
        "an address the Service requests wins over its reservation",
        [],
        svc("web", requested_ips=ips("198.51.100.11")),
        Outcome.ALLOCATED,
        ["198.51.100.11"],
        None,
    ),
    (
        "a requested pool that holds the reservation gives the reserved address",
        [],
        svc("db", requested_pool="manual"),
        Outcome.ALLOCATED,
        ["198.51.100.101"],
        None,
    ),
    (
        "a requested pool that does not hold the reservation wins over it",
        [],
        svc("web", requested_pool="manual"),
        Outcome.ALLOCATED,
        ["198.51.100.100"],
        None,
    ),
    (
        "the named Service moves from its current address to its reserved one",
        [],
        svc("web", current=ips("198.51.100.11")),
        Outcome.ALLOCATED,
        ["198.51.100.12"],
        None,
    ),
    (
        "a hand-edited status that claims another's reserved address is undone",
        [],
        svc("a", current=ips("198.51.100.12")),
        Outcome.ALLOCATED,
        ["198.51.100.10"],
        None,
    ),
]


@pytest.mark.parametrize(
    ("title", "before", "subject", "outcome", "expected", "reason"),
    RESERVATION_ROWS,
    ids=[r[0] for r in RESERVATION_ROWS],
)
def test_reservation_rules(
    title: str,
    before: list[ServiceRequest],
    subject: ServiceRequest,
    outcome: Outcome,
    expected: list[str],
    reason: Reason | None,
) -> None:
    assert_decides(Allocator(RES), before, subject, outcome, expected, reason)


# Each row: a Service refused because of a reservation, and the words its Event carries.
REFUSALS = [
    (
        "another Service is told whose reservation it asked for",
        svc("a", requested_ips=ips("198.51.100.12")),
        "198.51.100.12 is reserved for default/web (reservations[0])",
    ),
    (
        "the named Service is told which reservation its namespace cannot use",
        svc("intruder"),
        "reserved address 198.51.100.201 (reservations[3]): pool 'team' admits only "
        "namespaces team-a",
    ),
]


@pytest.mark.parametrize(("title", "subject", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_reservation(title: str, subject: ServiceRequest, message: str) -> None:
    decision = Allocator(RES).decide(subject)
    assert decision.problem is not None and decision.problem.message == message


def test_a_hand_edited_claim_on_a_reserved_address_is_cleared_naming_the_reservation() -> None:
    d = Allocator(RES).decide(svc("a", current=ips("198.51.100.12")))
    assert [(str(c.ip), c.reason, c.message) for c in d.cleared] == [
        (
            "198.51.100.12",
            Reason.RESERVED,
            "198.51.100.12 is reserved for default/web (reservations[0])",
        )
    ]


def test_moving_to_the_reserved_address_says_why() -> None:
    d = Allocator(RES).decide(svc("web", current=ips("198.51.100.11")))
    assert [(str(c.ip), c.reason, c.message) for c in d.cleared] == [
        (
            "198.51.100.11",
            Reason.NOT_REQUESTED,
            "198.51.100.11 is not its reserved 198.51.100.12 (reservations[0])",
        )
    ]


def test_an_explicit_request_leaves_the_reservation_kept_for_the_service() -> None:
    alloc = Allocator(RES)
    assert alloc.decide(svc("web", requested_ips=ips("198.51.100.11"))).ips == ips("198.51.100.11")
    others = [alloc.decide(svc(n, age=i + 1)).ips for i, n in enumerate("ab")]
    assert others == [ips("198.51.100.10"), ips("198.51.100.13")]
    assert alloc.holders(ip("198.51.100.12")) == frozenset()


def test_after_delete_and_recreate_it_gets_the_same_address_though_others_came_between() -> None:
    alloc = Allocator(RES)
    first = alloc.decide(svc("web"))
    assert first.ips == ips("198.51.100.12")
    alloc.release(ServiceKey("default/web"))  # deleted (helm uninstall)
    between = [alloc.decide(svc(n, age=i + 1)).ips for i, n in enumerate("abc")]
    assert between == [ips("198.51.100.10"), ips("198.51.100.11"), ips("198.51.100.13")]
    assert not alloc.has_free("lan", 4)  # what is left is kept for web
    again = alloc.decide(svc("web", age=9))  # recreated: a new creationTimestamp
    assert again.outcome is Outcome.ALLOCATED and again.ips == first.ips


def test_a_reservation_takes_no_address_away_and_its_service_gets_it_once_released() -> None:
    without = config.PoolConfig(RES.pools, RES.announce)
    alloc = Allocator(without)
    holder = svc("old", current=alloc.decide(svc("old", requested_ips=ips("198.51.100.12"))).ips)
    alloc.take_touched()
    alloc.set_config(RES)  # the reservation for default/web arrives while "old" holds it
    assert alloc.decide(holder).outcome is Outcome.KEPT
    waiting = alloc.decide(svc("web", age=1))
    assert waiting.outcome is Outcome.PENDING and waiting.problem is not None
    assert waiting.problem.reason is Reason.IN_USE
    assert waiting.problem.message == (
        "reserved address 198.51.100.12 (reservations[0]): it is held by default/old "
        "without the same sharing key"
    )
    assert waiting.wait is not None and waiting.wait.addresses == {ip("198.51.100.12")}
    alloc.release(holder.key)
    assert ip("198.51.100.12") in alloc.take_touched()  # what wakes web in the controller
    assert alloc.decide(svc("web", age=1)).ips == ips("198.51.100.12")
    back = alloc.decide(replace(holder, current=(), requested_ips=ips("198.51.100.12")))
    assert back.problem is not None and back.problem.reason is Reason.RESERVED


def test_restore_keeps_a_reserved_address_held_by_another_service_before_the_reservation() -> None:
    alloc = Allocator(RES)
    assert alloc.restore(svc("old", current=ips("198.51.100.12"))) == ips("198.51.100.12")
    assert alloc.decide(svc("old", current=ips("198.51.100.12"))).outcome is Outcome.KEPT


@pytest.mark.parametrize(
    "web_first", [True, False], ids=["web restored first", "web restored last"]
)
@pytest.mark.parametrize("web_age", [0, 9], ids=["web older", "web younger"])
def test_two_status_claims_on_a_reserved_address_go_to_its_service_in_any_order(
    web_first: bool, web_age: int
) -> None:
    alloc = Allocator(RES)
    web = svc("web", age=web_age, current=ips("198.51.100.12"))
    other = svc("other", age=5, current=ips("198.51.100.12"))
    claims = sorted([web, other], key=lambda r: r.age)  # the controller restores oldest first
    for req in claims:
        alloc.restore(req)
    order = [web, other] if web_first else [other, web]
    for req in order:
        d = alloc.decide(replace(req, current=req.current))
        for evicted in d.evicted:
            assert evicted == other.key
    final = alloc.decide(replace(other, current=ips("198.51.100.12")))
    assert final.ips != ips("198.51.100.12")
    assert alloc.holders(ip("198.51.100.12")) == {web.key}


SMALL_RESERVING = config.parse_yaml("""
pools:
  - {name: p1, addresses: [198.51.100.1-198.51.100.4, "2001:db8::/126"]}
  - {name: p2, addresses: [198.51.100.8-198.51.100.9], namespaces: [b]}
  - {name: p3, addresses: [198.51.100.16], autoAssign: false}
reservations:  # the same pools as SMALL
  - {address: 198.51.100.2, service: a/c}
  - {address: 198.51.100.16, service: b/d}
  - {address: 198.51.100.8, service: a/e}
  - {address: "2001:db8::1", service: a/c}
""")


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=40))
def test_a_reserved_address_is_only_ever_held_by_its_service(
    steps: list[tuple],  # type: ignore[type-arg]
) -> None:
    alloc = Allocator(SMALL_RESERVING)
    latest: dict[ServiceKey, ServiceRequest] = {}
    for step in steps:
        if step[0] == "release":
            for ns in "ab":
                alloc.release(ServiceKey(f"{ns}/{step[1]}"))
                latest.pop(ServiceKey(f"{ns}/{step[1]}"), None)
            continue
        req = step[1]
        req = replace(
            req, current=(step[2],) if step[0] == "status-edit" else alloc.assigned(req.key)
        )
        latest[req.key] = req
        for evicted in alloc.decide(req).evicted:
            latest[evicted] = replace(latest[evicted], current=alloc.assigned(evicted))
            alloc.decide(latest[evicted])
        check_invariants(alloc, latest)
        for r in SMALL_RESERVING.reservations:
            assert alloc.holders(r.address) <= {r.service}, (r, alloc.holders(r.address))


# --- address conflicts (onConflict) --------------------------------------------------------

CONFLICT_CFG = config.parse_yaml("""
pools:
  - name: lan
    addresses: [198.51.100.10-198.51.100.12, "2001:db8:1::/126"]
    onConflict: reallocate
  - name: spare
    addresses: [198.51.100.20]
    onConflict: reallocate
    priority: 5
  - name: steady
    addresses: [198.51.100.30-198.51.100.31]
    autoAssign: false
  - name: team
    addresses: [198.51.100.40-198.51.100.41]
    namespaces: [team-a]
    onConflict: reallocate
reservations:
  - {address: 198.51.100.11, service: default/web}
""")
OTHER_HOST = "MAC 02:00:00:00:99:01, seen by node n1"

# Each row: the addresses another host uses, earlier Services (decided in order), the Service
# under test, and what it gets.
CONFLICT_ROWS = [
    (
        "a Service on a conflicted address of a reallocate pool moves to the next free one",
        ["198.51.100.10"],
        [],
        svc("a", current=ips("198.51.100.10")),
        Outcome.ALLOCATED,
        ["198.51.100.12"],
        None,
    ),
    (
        "a new Service is never given a conflicted address",
        ["198.51.100.10"],
        [],
        svc("a"),
        Outcome.ALLOCATED,
        ["198.51.100.12"],
        None,
    ),
    (
        "a moved Service goes on to the next admitting pool when its own is full",
        ["198.51.100.10"],
        [svc("b", age=1)],
        svc("a", current=ips("198.51.100.10")),
        Outcome.ALLOCATED,
        ["198.51.100.20"],
        None,
    ),
    (
        "a Service of a hold pool keeps its conflicted address",
        ["198.51.100.30"],
        [],
        svc("a", requested_pool="steady", current=ips("198.51.100.30")),
        Outcome.KEPT,
        ["198.51.100.30"],
        None,
    ),
    (
        "a hold pool still hands out a conflicted address",
        ["198.51.100.30"],
        [],
        svc("a", requested_pool="steady"),
        Outcome.ALLOCATED,
        ["198.51.100.30"],
        None,
    ),
    (
        "a Service that requests the conflicted address keeps it",
        ["198.51.100.10"],
        [],
        svc("a", requested_ips=ips("198.51.100.10"), current=ips("198.51.100.10")),
        Outcome.KEPT,
        ["198.51.100.10"],
        None,
    ),
    (
        "a Service keeps its conflicted reserved address",
        ["198.51.100.11"],
        [],
        svc("web", current=ips("198.51.100.11")),
        Outcome.KEPT,
        ["198.51.100.11"],
        None,
    ),
    (
        "a moved Service stays in the pools that admit its namespace",
        ["198.51.100.40"],
        [],
        svc("a", ns="team-a", requested_pool="team", current=ips("198.51.100.40")),
        Outcome.ALLOCATED,
        ["198.51.100.41"],
        None,
    ),
    (
        "a Service with nowhere to move to loses the conflicted address and waits",
        ["198.51.100.40", "198.51.100.41"],
        [],
        svc("a", ns="team-a", requested_pool="team", current=ips("198.51.100.40")),
        Outcome.PENDING,
        [],
        Reason.EXHAUSTED,
    ),
    (
        "a conflicted address is not shared under a sharing key",
        ["198.51.100.10"],
        [svc("b", sharing_key="k", ports=tcp(80), requested_ips=ips("198.51.100.10"))],
        svc("a", age=1, sharing_key="k", ports=tcp(443)),
        Outcome.ALLOCATED,
        ["198.51.100.12"],
        None,
    ),
    (
        "a dual-stack Service moves only the family in conflict",
        ["2001:db8:1::"],
        [],
        svc(
            "a",
            families=(4, 6),
            family_policy=FamilyPolicy.REQUIRE_DUAL,
            current=ips("198.51.100.10", "2001:db8:1::"),
        ),
        Outcome.ALLOCATED,
        ["198.51.100.10", "2001:db8:1::1"],
        None,
    ),
]


@pytest.mark.parametrize(
    ("title", "conflicted", "before", "subject", "outcome", "expected", "reason"),
    CONFLICT_ROWS,
    ids=[r[0] for r in CONFLICT_ROWS],
)
def test_conflict_rules(
    title: str,
    conflicted: list[str],
    before: list[ServiceRequest],
    subject: ServiceRequest,
    outcome: Outcome,
    expected: list[str],
    reason: Reason | None,
) -> None:
    alloc = Allocator(CONFLICT_CFG, conflicts=dict.fromkeys(ips(*conflicted), OTHER_HOST))
    assert_decides(alloc, before, subject, outcome, expected, reason)


def test_the_moved_address_is_cleared_naming_the_other_host() -> None:
    alloc = Allocator(CONFLICT_CFG, conflicts={ip("198.51.100.10"): OTHER_HOST})
    decision = alloc.decide(svc("a", current=ips("198.51.100.10")))
    [cleared] = decision.cleared
    assert cleared.ip == ip("198.51.100.10")
    assert cleared.reason is Reason.ADDRESS_CONFLICT
    assert "02:00:00:00:99:01" in cleared.message and "onConflict: reallocate" in cleared.message


def test_restore_does_not_claim_a_conflicted_address_of_a_reallocate_pool() -> None:
    alloc = Allocator(CONFLICT_CFG, conflicts={ip("198.51.100.10"): OTHER_HOST})
    assert alloc.restore(svc("a", current=ips("198.51.100.10"))) == ()
    assert alloc.restore(svc("b", requested_pool="steady", current=ips("198.51.100.30"))) == ips(
        "198.51.100.30"
    )


def test_a_conflict_that_ends_frees_the_address_and_wakes_its_waiters() -> None:
    alloc = Allocator(CONFLICT_CFG)
    alloc.decide(svc("a", current=ips("198.51.100.10")))
    alloc.take_touched()
    assert alloc.set_conflicts({ip("198.51.100.10"): OTHER_HOST}) == {ip("198.51.100.10")}
    assert alloc.holders(ip("198.51.100.10")) == {"default/a"}  # the caller re-decides it
    moved = alloc.decide(svc("a", current=ips("198.51.100.10")))
    assert moved.ips == ips("198.51.100.12")
    alloc.take_touched()
    assert alloc.set_conflicts({}) == {ip("198.51.100.10")}
    assert ip("198.51.100.10") in alloc.take_touched()
    assert alloc.decide(svc("b", age=1)).ips == ips("198.51.100.10")
    # The moved Service stays where it is: nothing moves back.
    assert alloc.decide(svc("a", current=ips("198.51.100.12"))).outcome is Outcome.KEPT


def test_an_unchanged_conflict_report_changes_nothing() -> None:
    alloc = Allocator(CONFLICT_CFG, conflicts={ip("198.51.100.10"): OTHER_HOST})
    assert alloc.set_conflicts({ip("198.51.100.10"): OTHER_HOST}) == set()
