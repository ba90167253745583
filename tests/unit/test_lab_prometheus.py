"""What the lab's Prometheus scrapes: the controller in one job, the speakers in another."""

from __future__ import annotations

from pathlib import Path

from lbctl.lab import prometheus


def test_the_controller_and_the_speakers_are_scraped_every_interval_with_the_rules() -> None:
    conf = prometheus.scrape_config(
        {"controller": "127.0.0.1:40000", "node2": "198.51.100.12:7473",
         "node1": "198.51.100.11:7473"},
        [Path("/r/lbctl-rules.yaml")],
        "1s",
    )  # fmt: skip
    assert conf["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert conf["rule_files"] == ["/r/lbctl-rules.yaml"]
    jobs = {job["job_name"]: job["static_configs"] for job in conf["scrape_configs"]}
    assert jobs["lbctl-controller"] == [{"targets": ["127.0.0.1:40000"]}]
    # No label names the node, as in a cluster: lbctl_speaker_info does (the dashboard joins it).
    assert jobs["lbctl-speaker"] == [{"targets": ["198.51.100.11:7473", "198.51.100.12:7473"]}]


def test_without_speakers_there_is_no_speaker_job() -> None:
    conf = prometheus.scrape_config({"controller": "127.0.0.1:1"}, [], "5s")
    assert [job["job_name"] for job in conf["scrape_configs"]] == ["lbctl-controller"]
