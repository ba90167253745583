"""lbctl status: the rule that applies to each Service, and pool usage."""

from __future__ import annotations

from typing import Any

from lbctl import config, ownership, status
from lbctl.kube import services


def svc(name: str, ip: str | None = None, age: int = 0, **ann: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": ann,
            "creationTimestamp": f"2026-01-01T00:00:{age:02d}Z",
        },
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
    }


CONFIG = {"config.yaml": "pools: [{name: lan, addresses: [198.51.100.1-198.51.100.2]}]"}


def test_rows_say_ok_pending_with_reason_and_pool_usage() -> None:
    report = status.build(
        [
            svc("a", "198.51.100.1"),
            svc("b", "198.51.100.2", 1),
            svc("c", age=2),
            {"metadata": {"name": "x", "namespace": "default"}, "spec": {"type": "ClusterIP"}},
        ],
        CONFIG,
    )
    rows = {r.service: r for r in report.services}
    assert set(rows) == {"default/a", "default/b", "default/c"}
    assert rows["default/a"].state == "ok" and rows["default/a"].pool == "lan"
    assert rows["default/c"].state == "pending"
    assert "no free IPv4 address in pool(s) lan" in rows["default/c"].reason
    assert [(p.pool, p.size, p.used, p.free) for p in report.pools] == [("lan", 2, 2, 0)]
    text = status.render(report)
    assert "<pending>" in text and "POOL  FAMILY  SIZE  USED  FREE" in text


def test_a_status_the_rules_disagree_with_is_stale() -> None:
    report = status.build([svc("a", "203.0.113.5")], CONFIG)
    assert report.services[0].state == "stale"


def test_a_config_error_is_shown() -> None:
    report = status.build([svc("a")], {"config.yaml": "pools: nope"})
    assert report.config_error and "pools: Input should be a valid list" in report.config_error
    assert '"config_error"' in status.render(report, "json")


def node(name: str, **conditions: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": t, "status": v} for t, v in conditions.items()]},
    }


def test_status_shows_why_each_node_may_not_announce() -> None:
    nodes = [
        node("n1"),
        node("n2", NetworkUnavailable="True"),
        node("n3"),
        node("n4", Ready="False"),
    ]

    def view(objs: list[Any], cfg: config.PoolConfig) -> ownership.Ownership:
        return ownership.compute(
            cfg,
            service_objs=objs,
            node_objs=nodes,
            slice_objs=[],
            live={"n1", "n2", "n4", "gone"},
            handling=services.Handling(),
        )

    report = status.build([svc("a", "198.51.100.1")], CONFIG, nodes, speaker_view=view)
    why = {n.node: (n.eligible, n.reason) for n in report.nodes}
    assert why == {
        "n1": (True, ""),
        "n2": (False, "condition NetworkUnavailable is True"),
        "n3": (False, "no live speaker"),
        "n4": (True, ""),  # NotReady: its live speaker is what counts
        "gone": (False, "no Node object"),
    }
    assert report.services[0].announced_by[0] in ("n1", "n4")
    text = status.render(report)
    assert "NODE  ANNOUNCES  WHY NOT" in text
    assert "n2    no         condition NetworkUnavailable is True" in text
