"""Who announces: the same owner on every speaker, minimal movement, eligibility rules."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbctl import election
from lbctl.election import AddressNeeds, Ineligible, NodeInfo
from lbctl.selectors import Selector

IPS = [ipaddress.ip_address(f"198.51.100.{i}") for i in range(1, 201)]
NODES = ["node1", "node2", "node3", "node4"]


def test_the_owner_does_not_depend_on_the_order_of_candidates() -> None:
    for ip in IPS[:20]:
        assert election.owner(ip, NODES) == election.owner(ip, list(reversed(NODES)))


def test_no_candidates_no_owner() -> None:
    assert election.owner(IPS[0], []) is None


def test_addresses_spread_over_nodes() -> None:
    counts = Counter(election.owner(ip, NODES) for ip in IPS)
    assert set(counts) == set(NODES)
    assert min(counts.values()) > len(IPS) / len(NODES) / 2


def test_a_node_leaving_moves_only_its_own_addresses() -> None:
    before = {ip: election.owner(ip, NODES) for ip in IPS}
    after = {ip: election.owner(ip, NODES[:-1]) for ip in IPS}
    moved = [ip for ip in IPS if before[ip] != after[ip]]
    assert all(before[ip] == "node4" for ip in moved)


def test_a_node_joining_takes_only_addresses_it_wins() -> None:
    before = {ip: election.owner(ip, NODES) for ip in IPS}
    after = {ip: election.owner(ip, [*NODES, "node5"]) for ip in IPS}
    assert all(after[ip] == "node5" for ip in IPS if before[ip] != after[ip])


@given(st.lists(st.sampled_from([*NODES, "node5", "node6"]), unique=True), st.sampled_from(IPS))
def test_the_owner_is_always_a_candidate(cands: list[str], ip: ipaddress.IPv4Address) -> None:
    got = election.owner(ip, cands)
    assert (got is None) == (not cands) and (got is None or got in cands)


LIVE = {"n1", "n2"}
NOT_READY = {"Ready": "False", "NetworkUnavailable": "False"}

# Each row: the node, the announce selector, whether the exclude label counts, and why not.
ELIGIBILITY = [
    ("a live node may announce", NodeInfo("n1", {}), Selector(), True, None),
    (
        "a node without a live speaker may not",
        NodeInfo("n3", {}),
        Selector(),
        True,
        Ineligible.NO_SPEAKER,
    ),
    (
        "a live speaker whose Node object is gone may not",
        NodeInfo("n1", {}, exists=False),
        Selector(),
        True,
        Ineligible.NO_NODE,
    ),
    (
        "a Node being deleted may not",
        NodeInfo("n1", {}, deleting=True),
        Selector(),
        True,
        Ineligible.DELETING,
    ),
    (
        "a Node whose network is unavailable may not",
        NodeInfo("n1", {}, conditions={"NetworkUnavailable": "True", "Ready": "True"}),
        Selector(),
        True,
        Ineligible.NETWORK_UNAVAILABLE,
    ),
    (
        "a Node whose network condition cleared may again",
        NodeInfo("n1", {}, conditions={"NetworkUnavailable": "False"}),
        Selector(),
        True,
        None,
    ),
    (
        "a Node the cluster autoscaler is removing may not",
        NodeInfo("n1", {}, taints=frozenset({election.TO_BE_DELETED_TAINT})),
        Selector(),
        True,
        Ineligible.TO_BE_DELETED,
    ),
    (
        "a Node an administrator marked out of service (shut down) may not",
        NodeInfo("n1", {}, taints=frozenset({election.OUT_OF_SERVICE_TAINT})),
        Selector(),
        True,
        Ineligible.OUT_OF_SERVICE,
    ),
    (
        "a NotReady Node with a live speaker still may (the Lease is the proof of life)",
        NodeInfo("n1", {}, conditions=NOT_READY),
        Selector(),
        True,
        None,
    ),
    (
        "a Node whose Ready is Unknown (kubelet silent) still may while its speaker is live",
        NodeInfo("n1", {}, conditions={"Ready": "Unknown"}),
        Selector(),
        True,
        None,
    ),
    (
        "a cordoned Node still may (lbctl drain is the way to move addresses off)",
        NodeInfo("n1", {}, taints=frozenset({"node.kubernetes.io/unschedulable"})),
        Selector(),
        True,
        None,
    ),
    (
        "a drained node may not",
        NodeInfo("n1", {election.DRAIN_LABEL: "true"}),
        Selector(),
        True,
        Ineligible.DRAINED,
    ),
    (
        "a node labelled for exclusion may not",
        NodeInfo("n1", {election.EXCLUDE_LABEL: ""}),
        Selector(),
        True,
        Ineligible.EXCLUDED,
    ),
    (
        "the exclude label can be ignored",
        NodeInfo("n1", {election.EXCLUDE_LABEL: ""}),
        Selector(),
        False,
        None,
    ),
    (
        "a node the selector leaves out may not",
        NodeInfo("n1", {}),
        Selector.of({"lb": "yes"}),
        True,
        Ineligible.NODE_SELECTOR,
    ),
    (
        "a node the selector picks may",
        NodeInfo("n1", {"lb": "yes"}),
        Selector.of({"lb": "yes"}),
        True,
        None,
    ),
]


@pytest.mark.parametrize(
    ("title", "node", "selector", "honour", "why"), ELIGIBILITY, ids=[r[0] for r in ELIGIBILITY]
)
def test_node_eligibility(
    title: str, node: NodeInfo, selector: Selector, honour: bool, why: Ineligible | None
) -> None:
    assert (
        election.node_ineligible(node, live=LIVE, selector=selector, honour_exclude_label=honour)
        is why
    )


def test_local_policy_limits_candidates_to_nodes_with_ready_endpoints() -> None:
    need = AddressNeeds(IPS[0], ("default/web",), local_nodes=frozenset({"node3"}))
    assert election.assign([need], NODES) == {IPS[0]: "node3"}
    nobody = AddressNeeds(IPS[1], ("default/web",), local_nodes=frozenset())
    assert election.assign([nobody], NODES) == {IPS[1]: None}


# Each row: seconds since this speaker joined (None: not yet), peers still starting, and
# whether it may announce (wait: one renew period of 1 s; bound: 8 s).
SETTLING = [
    ("a speaker that has not joined may not announce", None, set(), False),
    ("a speaker that joined half a renew period ago may not", 0.5, set(), False),
    ("a speaker that joined a renew period ago, alone, may", 1.0, set(), True),
    ("a speaker waits for a peer that is still starting", 2.0, {"n2"}, False),
    ("it stops waiting for a peer that takes longer than the bound", 8.0, {"n2"}, True),
    ("a peer that finished starting (a candidate now) is no reason to wait", 1.5, set(), True),
]


@pytest.mark.parametrize(
    ("title", "joined_for", "starting", "may"), SETTLING, ids=[r[0] for r in SETTLING]
)
def test_the_start_up_rule(
    title: str, joined_for: float | None, starting: set[str], may: bool
) -> None:
    why = election.settling(joined_for, starting_peers=starting, wait=1.0, bound=8.0)
    assert (why is None) is may
    if starting and not may:
        assert "n2" in str(why)


def test_a_starting_speaker_is_no_candidate_and_says_so() -> None:
    node = NodeInfo("n3", {})
    assert (
        election.node_ineligible(node, live=LIVE, selector=Selector(), starting={"n3"})
        is Ineligible.STARTING
    )


# Each row: renew period and lease duration (s), and the start-up wait and bound they give.
SETTLE_TIMES = [
    ("the defaults (10 s / 40 s) wait a second and at most ten for starters", 10.0, 40, 1.0, 10.0),
    ("the tests' timings (0.4 s / 2 s) wait one renew period and two leases", 0.4, 2, 0.4, 4.0),
    ("tuned failover (0.25 s / 1 s)", 0.25, 1, 0.25, 2.0),
]


@pytest.mark.parametrize(
    ("title", "renew", "lease", "wait", "bound"), SETTLE_TIMES, ids=[r[0] for r in SETTLE_TIMES]
)
def test_the_start_up_rule_times(
    title: str, renew: float, lease: int, wait: float, bound: float
) -> None:
    assert election.settle_times(renew, lease) == (wait, bound)
