"""The helper that reads metric names out of the dashboard's and alerts' PromQL."""

from __future__ import annotations

import pytest
from promql_helpers import metric_names, sample_names


@pytest.mark.parametrize(
    ("says", "expr", "names"),
    [
        ("a bare selector is its name", "lbctl_leader", {"lbctl_leader"}),
        (
            "functions, ranges and Grafana variables are not metrics",
            "histogram_quantile(0.99, sum by (le) "
            "(rate(lbctl_allocation_latency_seconds_bucket[$__rate_interval])))",
            {"lbctl_allocation_latency_seconds_bucket"},
        ),
        (
            "label lists and matchers are not metrics, both sides of a join are",
            'sum by (node) (increase(lbctl_speaker_ownership_changes_total{change="took"}[5m])'
            " * on (instance) group_left (node) lbctl_speaker_info)",
            {"lbctl_speaker_ownership_changes_total", "lbctl_speaker_info"},
        ),
        (
            "set operators and comparisons leave both operands",
            "lbctl_allocator_address_assigned == 1 unless on (ip) lbctl_speaker_announced == 1",
            {"lbctl_allocator_address_assigned", "lbctl_speaker_announced"},
        ),
        ("vector() and numbers read nothing", "(max(lbctl_leader) or vector(0)) < 1e3",
         {"lbctl_leader"}),
        ("a misspelt name is still a name", "lbctl_leadr", {"lbctl_leadr"}),
    ],
)  # fmt: skip
def test_metric_names_of_an_expression(says: str, expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names, says


def test_a_scrape_offers_every_series_name_of_its_families_even_before_a_sample() -> None:
    exposition = (
        "# HELP c a counter\n# TYPE c counter\n"
        "# HELP g a gauge\n# TYPE g gauge\ng 1\n"
        "# HELP h a histogram\n# TYPE h histogram\n"
        'h_bucket{le="+Inf"} 0\nh_count 0\nh_sum 0\n'
    )
    assert sample_names(exposition) >= {"c_total", "g", "h_bucket", "h_count", "h_sum"}
    assert "c" not in sample_names(exposition)
