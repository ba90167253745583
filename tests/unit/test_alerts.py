"""The alerts: valid for Prometheus (``promtool check rules``), right on recorded series
(``promtool test rules``), the same in the chart as in deploy/, and about documented metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from promql_helpers import metric_names

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "monitoring" / "lbctl-rules.yaml"
CHART_RULES = ROOT / "deploy" / "helm" / "lbctl" / "files" / "lbctl-rules.yaml"
RULE_TESTS = Path(__file__).parent / "alerts" / "lbctl-rules.test.yaml"
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()


def run(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=120, check=False
    )


def alerts() -> list[dict[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules_file(promtool: Path) -> None:
    got = run(promtool, "check", "rules", str(RULES))
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in got.stdout


def test_the_alerts_fire_as_the_recorded_series_say(promtool: Path) -> None:
    got = run(promtool, "test", "rules", str(RULE_TESTS))
    assert got.returncode == 0, got.stdout + got.stderr


def test_the_chart_ships_the_same_rules_as_deploy() -> None:
    assert CHART_RULES.read_bytes() == RULES.read_bytes()


@pytest.mark.parametrize(
    ("alert", "must_read"),
    [
        ("LbctlConfigStale", "lbctl_config_stale"),
        ("LbctlPoolNearlyFull", "lbctl_allocator_addresses_in_use"),
        ("LbctlPoolExhausted", "lbctl_allocator_addresses_total"),
        ("LbctlServicesPending", "lbctl_services_pending"),
        ("LbctlAddressNotAnnounced", "lbctl_speaker_announced"),
        ("LbctlLeaderMissing", "lbctl_leader"),
    ],
)
def test_each_alert_an_operator_needs_exists_and_reads_documented_metrics(
    alert: str, must_read: str
) -> None:
    rule = next((r for r in alerts() if r.get("alert") == alert), None)
    assert rule is not None, f"no alert {alert}"
    names = metric_names(rule["expr"])
    assert must_read in names
    for name in names:
        assert f"`{name}`" in REFERENCE, f"{alert} reads {name}, which docs do not name"
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
