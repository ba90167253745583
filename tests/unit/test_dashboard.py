"""The Grafana dashboard: every query reads documented metrics, the chart ships the same JSON,
and it shows what the issue asks an operator to see. (tests/e2e/test_monitoring.py checks each
query against a live scrape of the lab and a real Prometheus.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from promql_helpers import metric_names

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "monitoring" / "lbctl-dashboard.json"
CHART_DASHBOARD = ROOT / "deploy" / "helm" / "lbctl" / "files" / "lbctl-dashboard.json"
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def queries() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_the_chart_ships_the_same_dashboard_as_deploy() -> None:
    assert CHART_DASHBOARD.read_bytes() == DASHBOARD.read_bytes()


@pytest.mark.parametrize("expr", queries())
def test_every_query_reads_only_documented_lbctl_metrics(expr: str) -> None:
    names = metric_names(expr)
    assert names, expr
    for name in names:
        base = name.removesuffix("_total").removesuffix("_bucket")
        assert f"`{base}`" in REFERENCE or f"`{name}`" in REFERENCE, (name, expr)


@pytest.mark.parametrize(
    ("what", "metric"),
    [
        ("pool usage by pool and family", "lbctl_allocator_addresses_in_use"),
        ("allocation latency", "lbctl_allocation_latency_seconds_bucket"),
        ("pending Services", "lbctl_services_pending"),
        ("the announcing node of each address", "lbctl_speaker_info"),
        ("failovers", "lbctl_speaker_ownership_changes_total"),
        ("ARP/NDP requests", "lbctl_speaker_requests_received_total"),
        ("ARP/NDP replies", "lbctl_speaker_replies_sent_total"),
        ("API writes", "lbctl_api_writes_total"),
    ],
)
def test_the_dashboard_shows(what: str, metric: str) -> None:
    assert any(metric in metric_names(q) for q in queries()), what


def test_every_panel_uses_the_datasource_variable_and_has_a_place() -> None:
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))
