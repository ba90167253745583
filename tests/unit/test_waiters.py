"""Pending Services are re-decided when another Service stops blocking them, and only then.

A small stand-in for the controller's loop (informer events into a queue, one decision per
key, ``waiters.woken`` after each) runs over the real allocator, so each row reads as what a
user sees: the waiter gets its address, and how many decisions that cost.
"""

from __future__ import annotations

import copy
import ipaddress
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl import config, waiters
from lbctl.allocator import (
    Allocator,
    FamilyPolicy,
    Port,
    Reason,
    ServiceKey,
    ServiceRequest,
    Wait,
)

X = ipaddress.ip_address("198.51.100.10")
ONE = config.parse_yaml("pools: [{name: lan, addresses: [198.51.100.10/32]}]")


def svc(name: str, age: int = 0, **kw: object) -> ServiceRequest:
    return ServiceRequest(
        key=ServiceKey(f"default/{name}"),
        namespace="default",
        created=f"2026-01-01T00:{age // 60:02d}:{age % 60:02d}Z",
        **kw,  # type: ignore[arg-type]
    )


def ports(*specs: str) -> frozenset[Port]:
    return frozenset(Port(s.split("/")[0], int(s.split("/")[1])) for s in specs)


class Loop:
    """The controller's loop in miniature: status is what the allocator last decided."""

    def __init__(self, cfg: config.PoolConfig) -> None:
        self.alloc = Allocator(cfg)
        self.waiters = waiters.Waiters()
        self.services: dict[ServiceKey, ServiceRequest] = {}
        self.queue: dict[ServiceKey, None] = {}
        self.decided: Counter[ServiceKey] = Counter()

    def put(self, *reqs: ServiceRequest) -> None:
        for req in reqs:
            self.services[req.key] = req
            self.queue[req.key] = None

    def delete(self, key: ServiceKey) -> None:
        del self.services[key]
        self.queue[key] = None

    def run(self) -> None:
        while self.queue:
            key = next(iter(self.queue))
            del self.queue[key]
            req = self.services.get(key)
            if req is None:
                handoffs = self.waiters.remove(key)
                self.alloc.release(key)
            else:
                self.decided[key] += 1
                d = self.alloc.decide(replace(req, current=self.alloc.assigned(key)))
                self.queue.update(dict.fromkeys(d.evicted))
                handoffs = self.waiters.record(key, req.age, d.wait)
            self.queue.update(dict.fromkeys(waiters.woken(self.waiters, self.alloc, handoffs)))

    def has(self, name: str) -> list[str]:
        return [str(ip) for ip in self.alloc.assigned(ServiceKey(f"default/{name}"))]


DNS = {"sharing_key": "dns", "requested_ips": (X,)}
HOLDER = svc(
    "holder", 1, ports=ports("TCP/53"), cluster_traffic=False, selector=(("app", "holder"),), **DNS
)
WAITER = svc("waiter", 2, ports=ports("UDP/53"), selector=(("app", "waiter"),), **DNS)

# Each row: the holder of X, the waiter refused X, the holder's change, whether it unblocks.
UNBLOCK = [
    (
        "the holder turns Cluster: Local with other selectors no longer blocks the waiter",
        HOLDER,
        WAITER,
        {"cluster_traffic": True},
        True,
    ),
    (
        "the holder moves from TCP/80 to TCP/8080: TCP/80 on X is the waiter's",
        replace(HOLDER, ports=ports("TCP/80"), cluster_traffic=True),
        replace(WAITER, ports=ports("TCP/80")),
        {"ports": ports("TCP/8080")},
        True,
    ),
    (
        "the holder takes the waiter's sharing key",
        replace(HOLDER, sharing_key="other", cluster_traffic=True),
        WAITER,
        {"sharing_key": "dns"},
        True,
    ),
    (
        "the holder takes the waiter's selector, both Local",
        HOLDER,
        replace(WAITER, cluster_traffic=False),
        {"selector": (("app", "waiter"),)},
        True,
    ),
    (
        "the holder asks for another address: X is free",
        replace(HOLDER, sharing_key=None),
        WAITER,
        {"requested_ips": (), "requested_pool": "other"},
        True,
    ),
    (
        "the holder changes a label only: the waiter stays refused",
        HOLDER,
        WAITER,
        {"labels": {"team": "a"}},
        False,
    ),
    (
        "the holder changes port but stays Local with another selector: still refused",
        HOLDER,
        WAITER,
        {"ports": ports("TCP/5353")},
        False,
    ),
]


@pytest.mark.parametrize(
    ("title", "holder", "waiter", "change", "unblocks"), UNBLOCK, ids=[r[0] for r in UNBLOCK]
)
def test_a_change_of_the_holder_re_decides_the_waiter_it_blocked(
    title: str,
    holder: ServiceRequest,
    waiter: ServiceRequest,
    change: dict[str, object],
    unblocks: bool,
) -> None:
    cfg = config.parse_yaml(
        "pools: [{name: lan, addresses: [198.51.100.10/32]},"
        " {name: other, addresses: [198.51.100.20/32], autoAssign: false}]"
    )
    loop = Loop(cfg)
    loop.put(holder)
    loop.run()
    loop.put(waiter)
    loop.run()
    assert loop.has("waiter") == []
    assert waiter.key in loop.waiters
    loop.decided.clear()
    loop.put(replace(holder, **change))  # type: ignore[arg-type]
    loop.run()
    assert loop.has("waiter") == (["198.51.100.10"] if unblocks else [])
    # Woken when the holder's hold on X changed; a label alone changes nothing.
    woken = unblocks or "ports" in change
    assert loop.decided[waiter.key] == (1 if woken else 0)


def test_deleting_the_holder_gives_the_waiter_its_address() -> None:
    loop = Loop(ONE)
    loop.put(HOLDER)
    loop.run()
    loop.put(WAITER)
    loop.run()
    loop.delete(HOLDER.key)
    loop.run()
    assert loop.has("waiter") == ["198.51.100.10"]
    assert len(loop.waiters) == 0


def test_a_freed_address_costs_one_decision_among_a_thousand_waiters() -> None:
    loop = Loop(ONE)
    loop.put(svc("holder", 0))
    loop.run()
    loop.put(*(svc(f"w{i:04d}", i + 1) for i in range(1000)))
    loop.run()
    assert len(loop.waiters) == 1000
    loop.decided.clear()
    loop.delete(ServiceKey("default/holder"))
    loop.run()
    assert loop.has("w0000") == ["198.51.100.10"]  # the oldest waiter gets it
    assert sum(loop.decided.values()) == 1
    assert len(loop.waiters) == 999


def test_an_unrelated_change_wakes_none_of_a_thousand_waiters() -> None:
    loop = Loop(ONE)
    loop.put(svc("holder", 0, ports=ports("TCP/80")))
    loop.put(*(svc(f"w{i:04d}", i + 1) for i in range(1000)))
    loop.run()
    loop.decided.clear()
    loop.put(svc("holder", 0, ports=ports("TCP/80"), labels={"x": "y"}))
    loop.run()
    assert sum(loop.decided.values()) == 1  # the holder itself


def test_a_waiter_that_cannot_use_the_freed_address_passes_it_on() -> None:
    """RequireDualStack needs an IPv6 address too; the next waiter needs only IPv4."""
    cfg = config.parse_yaml("pools: [{name: lan, addresses: [198.51.100.10/32, '2001:db8::/128']}]")
    loop = Loop(cfg)
    loop.put(svc("v4", 0), svc("v6", 1, families=(6,)))
    loop.run()
    dual = svc("dual", 2, families=(4, 6), family_policy=FamilyPolicy.REQUIRE_DUAL)
    loop.put(dual, svc("late", 3))
    loop.run()
    loop.decided.clear()
    loop.delete(ServiceKey("default/v4"))
    loop.run()
    assert loop.has("dual") == [] and loop.has("late") == ["198.51.100.10"]
    assert loop.decided == {dual.key: 1, ServiceKey("default/late"): 1}


def test_a_waiter_for_a_full_pool_with_a_sharing_key_shares_once_a_holder_frees_its_port() -> None:
    loop = Loop(ONE)
    loop.put(svc("web", 0, sharing_key="k", ports=ports("TCP/80")))
    loop.run()
    loop.put(svc("web2", 1, sharing_key="k", ports=ports("TCP/80")))
    loop.run()
    assert loop.has("web2") == []
    loop.put(svc("web", 0, sharing_key="k", ports=ports("TCP/8080")))
    loop.run()
    assert loop.has("web2") == ["198.51.100.10"]


# --- the index itself -----------------------------------------------------------------------

A, B, C = (ServiceKey(f"default/{n}") for n in "abc")
FULL = Wait(pools=frozenset({("lan", 4)}))


def test_a_hand_off_goes_oldest_first_and_stops_when_no_address_is_left() -> None:
    w = waiters.Waiters()
    for key, age in ((B, 2), (A, 1), (C, 3)):
        w.record(key, (str(age), key), FULL)
    assert w.freed(("lan", 4)) == A
    assert w.freed(("lan", 4)) is None  # one hand-off at a time: it goes on by itself
    assert w.record(A, ("1", A), None) == [("lan", 4)]  # A decided: the step is done
    assert w.advance(("lan", 4), still_free=True) == B
    assert w.record(B, ("2", B), FULL) == [("lan", 4)]  # B could not use it either
    assert w.advance(("lan", 4), still_free=False) is None  # taken meanwhile: stop
    assert w.freed(("lan", 4)) == B  # the next free address starts with the oldest again


def test_a_deleted_waiter_ends_its_step_of_the_hand_off() -> None:
    w = waiters.Waiters()
    w.record(A, ("1", A), FULL)
    w.record(B, ("2", B), FULL)
    assert w.freed(("lan", 4)) == A
    assert w.remove(A) == [("lan", 4)]
    assert w.advance(("lan", 4), still_free=True) == B


def test_waiters_on_an_address_are_woken_by_a_change_of_its_holders() -> None:
    w = waiters.Waiters()
    w.record(A, ("1", A), Wait(addresses=frozenset({X})))
    w.record(B, ("2", B), Wait(pools=frozenset({("lan", 4)}), sharing_key="k"))
    assert w.touched(X, ()) == {A}
    assert w.touched(X, {"k"}) == {A, B}
    w.record(A, ("1", A), None)
    assert w.touched(X, ()) == set()


def test_a_requested_address_in_use_is_what_the_decision_waits_for() -> None:
    alloc = Allocator(ONE)
    alloc.decide(svc("a", 0))
    d = alloc.decide(svc("b", 1, requested_ips=(X,)))
    assert d.problem is not None and d.problem.reason is Reason.IN_USE
    assert d.wait == Wait(addresses=frozenset({X}))
    full = alloc.decide(svc("c", 2, sharing_key="k"))
    assert full.wait == Wait(pools=frozenset({("lan", 4)}), sharing_key="k")
    assert alloc.decide(svc("d", 3, requested_pool="nope")).wait is None  # only a config helps


# --- property: once the loop is idle, no re-decision would change anything --------------------

SMALL = config.parse_yaml("""
pools:
  - {name: p1, addresses: [198.51.100.1-198.51.100.2, "2001:db8::/127"]}
  - {name: p2, addresses: [198.51.100.8], autoAssign: false}
""")

request_st = st.builds(
    lambda name, age, fam, key, port, local, sel, req, pool: svc(
        name,
        age,
        families=fam,
        family_policy=FamilyPolicy.REQUIRE_DUAL if len(fam) == 2 else FamilyPolicy.SINGLE,
        sharing_key=key,
        ports=ports(port),
        cluster_traffic=not local,
        selector=(("app", sel),),
        requested_ips=req,
        requested_pool=pool,
    ),
    name=st.sampled_from("abcdef"),
    age=st.integers(0, 59),
    fam=st.sampled_from([(4,), (4,), (6,), (4, 6)]),
    key=st.sampled_from([None, "k", "k", "j"]),
    port=st.sampled_from(["TCP/80", "TCP/80", "UDP/80", "TCP/443"]),
    local=st.booleans(),
    sel=st.sampled_from(["x", "y"]),
    req=st.sampled_from([(), (), (), (ipaddress.ip_address("198.51.100.1"),)]),
    pool=st.sampled_from([None, None, None, "p2"]),
)
step_st = st.one_of(
    st.tuples(st.just("put"), request_st),
    st.tuples(st.just("delete"), st.sampled_from("abcdef")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=30))
def test_no_pending_service_is_left_that_a_re_decision_would_unblock(
    steps: list[tuple[str, object]],
) -> None:
    loop = Loop(SMALL)
    for kind, arg in steps:
        if kind == "put":
            assert isinstance(arg, ServiceRequest)
            # A Service keeps its creation time: a name keeps the age it was first put with.
            old = loop.services.get(arg.key)
            loop.put(replace(arg, created=old.created) if old else arg)
        else:
            key = ServiceKey(f"default/{arg}")
            if key in loop.services:
                loop.delete(key)
        loop.run()
        for key, req in loop.services.items():
            dry = copy.deepcopy(loop.alloc)
            again = dry.decide(replace(req, current=loop.alloc.assigned(key)))
            assert again.ips == loop.alloc.assigned(key), (key, again)


def test_a_prefer_dual_stack_service_missing_a_family_gets_it_once_an_address_frees() -> None:
    """Same kind, found while searching: it was never retried, having an address already."""
    cfg = config.parse_yaml("pools: [{name: lan, addresses: [198.51.100.10/31, '2001:db8::/128']}]")
    loop = Loop(cfg)
    loop.put(svc("v6", 0, families=(6,)))
    loop.run()
    dual = svc("dual", 1, families=(4, 6), family_policy=FamilyPolicy.PREFER_DUAL)
    loop.put(dual)
    loop.run()
    assert loop.has("dual") == ["198.51.100.10"]
    loop.delete(ServiceKey("default/v6"))
    loop.run()
    assert loop.has("dual") == ["198.51.100.10", "2001:db8::"]


def test_a_freed_reserved_address_wakes_its_service_and_none_of_the_pools_waiters() -> None:
    cfg = config.parse_yaml(
        "pools: [{name: lan, addresses: [198.51.100.10/31]}]\n"
        "reservations: [{address: 198.51.100.10, service: default/web}]"
    )
    loop = Loop(cfg)
    loop.put(svc("old", 0, requested_ips=(X,)))  # held X before the reservation: keeps it
    loop.alloc.set_config(config.PoolConfig(cfg.pools))
    loop.run()
    loop.alloc.set_config(cfg)
    loop.put(svc("other", 1), svc("web", 2), *(svc(f"w{i}", i + 3) for i in range(3)))
    loop.run()
    assert loop.has("web") == [] and loop.has("other") == ["198.51.100.11"]
    assert len(loop.waiters) == 4  # web waits for X; w0-w2 for the full pool
    loop.decided.clear()
    loop.delete(ServiceKey("default/old"))
    loop.run()
    assert loop.has("web") == ["198.51.100.10"]
    assert loop.decided == Counter({ServiceKey("default/web"): 1})
