"""Per-pool policy as the components apply it: the allocator admits namespaces by their labels,
the election picks owners among the nodes a pool's policy lets announce, and ``lbctl status``
and ``lbctl check`` say so (pure: plain values and raw API dicts)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import yaml
from status_helpers import build

from lbctl import audit, config, objects, ownership, status
from lbctl.allocator import Allocator, Outcome, Reason, ServiceKey, ServiceRequest

TEAM = {"matchLabels": {"team": "a"}}
LAN = "198.51.100.1-198.51.100.14"
IP = ipaddress.ip_address("198.51.100.1")


def cfg_of(*pools: dict[str, Any], **top: Any) -> config.PoolConfig:
    return config.parse_yaml(yaml.safe_dump({"pools": list(pools), **top}))


def request(
    labels: dict[str, str] | None, current: tuple[ipaddress.IPv4Address, ...] = ()
) -> ServiceRequest:
    return ServiceRequest(
        key=ServiceKey("shop/web"), namespace="shop", namespace_labels=labels, current=current
    )


# --- the allocator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "current", "outcome", "ips", "reason"),
    [
        pytest.param(
            {"team": "a"},
            (),
            Outcome.ALLOCATED,
            (IP,),
            None,
            id="a labelled namespace gets an address",
        ),
        pytest.param(
            {"team": "b"},
            (),
            Outcome.PENDING,
            (),
            Reason.NOT_ADMITTED,
            id="an unlabelled one waits: no pool admits it",
        ),
        pytest.param(
            {"team": "a"},
            (IP,),
            Outcome.KEPT,
            (IP,),
            None,
            id="a labelled namespace keeps its address",
        ),
        pytest.param(
            {"team": "b"},
            (IP,),
            Outcome.PENDING,
            (),
            Reason.NOT_ADMITTED,
            id="once unlabelled, the pool no longer admits it: the address is cleared",
        ),
        pytest.param(
            None, (IP,), Outcome.KEPT, (IP,), None, id="labels not known yet: a held address stays"
        ),
        pytest.param(
            None,
            (),
            Outcome.PENDING,
            (),
            Reason.NOT_ADMITTED,
            id="labels not known yet: no new address on a guess",
        ),
    ],
)
def test_a_namespace_selector_admits_by_the_namespace_labels(
    labels: dict[str, str] | None,
    current: tuple[ipaddress.IPv4Address, ...],
    outcome: Outcome,
    ips: tuple[ipaddress.IPv4Address, ...],
    reason: Reason | None,
) -> None:
    alloc = Allocator(cfg_of({"name": "team", "addresses": [LAN], "namespaceSelector": TEAM}))
    decision = alloc.decide(request(labels, current))
    assert (decision.outcome, decision.ips) == (outcome, ips)
    assert (decision.problem.reason if decision.problem else None) is reason


def test_the_pending_reason_names_every_pool_that_refuses_the_namespace() -> None:
    alloc = Allocator(
        cfg_of(
            {"name": "team", "addresses": [LAN], "namespaceSelector": TEAM},
            {"name": "web", "addresses": ["198.51.100.16/28"], "namespaces": ["web"]},
        )
    )
    problem = alloc.decide(request({"team": "b"})).problem
    assert problem is not None and problem.message == (
        "no pool admits namespace 'shop': pool 'team' admits only namespaces matching team=a; "
        "pool 'web' admits only namespaces web"
    )


def test_a_namespace_a_selector_names_by_its_name_is_judged_without_its_labels() -> None:
    by_name = {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}
    alloc = Allocator(cfg_of({"name": "shop", "addresses": [LAN], "namespaceSelector": by_name}))
    assert alloc.decide(request(None)).ips == (IP,)


def test_the_adapter_reads_the_namespace_labels() -> None:
    svc = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "LoadBalancer"}}
    ns = {"metadata": {"name": "shop", "labels": {"team": "a"}}}
    assert objects.request_of(svc, ns).namespace_labels == {"team": "a"}
    assert objects.request_of(svc).namespace_labels is None


# --- the election -------------------------------------------------------------------------


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


NODES = [node("n1", edge="true"), node("n2", edge="true"), node("n3")]
LIVE = {"n1", "n2", "n3"}


def service(ip: str, name: str = "web") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def view(
    cfg: config.PoolConfig, live: set[str] = LIVE, svcs: list[dict[str, Any]] | None = None
) -> ownership.Ownership:
    return ownership.compute(
        cfg,
        service_objs=svcs
        if svcs is not None
        else [service(f"198.51.100.{i}") for i in range(1, 9)],
        node_objs=NODES,
        slice_objs=[],
        live=live,
        handling=objects.Handling(),
    )


EDGE = {"nodeSelector": {"matchLabels": {"edge": "true"}}}


@pytest.mark.parametrize(
    ("pool", "live", "owners"),
    [
        pytest.param(
            {}, LIVE, {"n1", "n2", "n3"}, id="no policy: every eligible node takes a share"
        ),
        pytest.param(
            {"announce": EDGE},
            LIVE,
            {"n1", "n2"},
            id="announced from labelled nodes: only they own addresses",
        ),
        pytest.param(
            {"announce": EDGE},
            {"n2", "n3"},
            {"n2"},
            id="a labelled node gone: another labelled node, never an unlabelled one",
        ),
        pytest.param({"announce": EDGE}, {"n3"}, {None}, id="no labelled node left: nobody"),
        pytest.param(
            {"announce": False}, LIVE, {None}, id="not announced: nobody, whoever is alive"
        ),
    ],
)
def test_an_address_is_elected_among_the_nodes_its_pool_lets_announce(
    pool: dict[str, Any], live: set[str], owners: set[str | None]
) -> None:
    own = view(cfg_of({"name": "lan", "addresses": [LAN], **pool}), live)
    assert set(own.owners.values()) == owners


def test_a_pool_policy_replaces_the_global_node_selector() -> None:
    cfg = cfg_of(
        {"name": "lan", "addresses": [LAN], "announce": {}},
        announce={"nodeSelector": {"matchLabels": {"edge": "true"}}},
    )
    assert set(view(cfg).owners.values()) == {"n1", "n2", "n3"}


def test_each_pool_is_elected_among_its_own_nodes() -> None:
    cfg = cfg_of(
        {"name": "edge", "addresses": ["198.51.100.0/29"], "announce": EDGE},
        {
            "name": "inner",
            "addresses": ["198.51.100.8/29"],
            "announce": {
                "nodeSelector": {"matchExpressions": [{"key": "edge", "operator": "DoesNotExist"}]}
            },
        },
    )
    svcs = [service(f"198.51.100.{i}", f"s{i}") for i in range(1, 15)]
    owners = view(cfg, svcs=svcs).owners
    assert {owners[ipaddress.ip_address(f"198.51.100.{i}")] for i in range(1, 8)} <= {"n1", "n2"}
    assert {owners[ipaddress.ip_address(f"198.51.100.{i}")] for i in range(8, 15)} == {"n3"}


# --- lbctl status and lbctl check -------------------------------------------------------


def speaker_view(live: set[str] = LIVE) -> status.SpeakerView:
    def compute(objs: list[Any], cfg: config.PoolConfig) -> ownership.Ownership:
        return view(cfg, live, objs)

    return compute


def configmap(*pools: dict[str, Any]) -> dict[str, str]:
    return {"config.yaml": yaml.safe_dump({"pools": list(pools)})}


def test_status_says_why_a_node_may_not_announce_a_pool() -> None:
    data = configmap(
        {"name": "edge", "addresses": ["198.51.100.0/29"], "announce": EDGE},
        {"name": "quiet", "addresses": ["198.51.100.8/29"], "announce": False},
    )
    report = build([service("198.51.100.1")], data, NODES, speaker_view=speaker_view())
    rows = {n.node: n for n in report.nodes}
    assert rows["n1"].eligible and rows["n1"].not_for == [
        "quiet: its pool is not announced (announce: false)"
    ]
    assert (
        not rows["n3"].eligible
        and rows["n3"].reason == "no pool's announce policy lets it announce"
    )
    text = status.render(report)
    assert "n1    yes, but not every pool  quiet: its pool is not announced" in text


@pytest.mark.parametrize(
    ("pool", "live", "announced_by"),
    [
        pytest.param(
            {"announce": False},
            LIVE,
            "<nobody: pool 'lan' is not announced (announce: false)>",
            id="a pool not announced: said so",
        ),
        pytest.param(
            {"announce": EDGE},
            {"n3"},
            "<nobody: no eligible node matches the announce policy of pool 'lan'>",
            id="a policy no live node matches: said so",
        ),
        pytest.param(
            {},
            set(),
            "<nobody: no live, eligible speaker can announce it>",
            id="no speaker at all: said so",
        ),
    ],
)
def test_status_says_why_nobody_announces_an_address(
    pool: dict[str, Any], live: set[str], announced_by: str
) -> None:
    data = configmap({"name": "lan", "addresses": [LAN], **pool})
    report = build([service("198.51.100.1")], data, NODES, speaker_view=speaker_view(live))
    assert report.services[0].announced_by == [announced_by]


@pytest.mark.parametrize(
    ("pool", "live", "findings"),
    [
        pytest.param(
            {"announce": False},
            set(),
            [],
            id="an address of a pool not announced, with no speaker: not a finding",
        ),
        pytest.param({"announce": EDGE}, {"n1"}, [], id="a labelled node announces it: no finding"),
        pytest.param(
            {"announce": EDGE},
            {"n3"},
            [
                (
                    audit.Kind.NO_LIVE_SPEAKER,
                    "no eligible node matches the announce policy of pool 'lan' (default/web)",
                )
            ],
            id="a policy that matches no live node: reported",
        ),
    ],
)
def test_check_follows_the_announce_policy(
    pool: dict[str, Any], live: set[str], findings: list[tuple[audit.Kind, str]]
) -> None:
    data = configmap({"name": "lan", "addresses": [LAN], **pool})
    found = audit.check([service("198.51.100.1")], data, node_objs=NODES, live=live)
    assert [(f.kind, f.message) for f in found] == findings


def test_check_judges_a_namespace_selector_by_the_namespace_labels() -> None:
    data = configmap({"name": "lan", "addresses": [LAN], "namespaceSelector": TEAM})
    ns = [{"metadata": {"name": "default", "labels": {"team": "a"}}}]
    svc = service("198.51.100.1")
    live = {"n1", "n2", "n3"}
    assert audit.check([svc], data, node_objs=NODES, live=live, namespace_objs=ns) == []
    ns[0]["metadata"]["labels"] = {}
    kinds = [
        f.kind for f in audit.check([svc], data, node_objs=NODES, live=live, namespace_objs=ns)
    ]
    assert kinds == [audit.Kind.STALE]
