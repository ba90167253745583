"""A real Prometheus scrapes the lab's controller and speakers: the dashboard's queries read
only metrics the lab serves, and two alerts fire and resolve as the lab changes.

One lab and one Prometheus for the module. The rules are the shipped file with every ``for``
shortened to seconds: the expressions are the ones users get."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import events, put_config, service, wait_for
from kubernetes import client, config
from promql_helpers import metric_names, sample_names

from lbctl.lab import lab as lab_mod
from lbctl.lab import prometheus

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "monitoring" / "lbctl-rules.yaml"
DASHBOARD = ROOT / "deploy" / "monitoring" / "lbctl-dashboard.json"
FOR = "3s"


def lab_cmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbctl", "lab", *args],
        env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def shortened_rules(path: Path) -> Path:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = FOR
    path.write_text(yaml.safe_dump(rules))
    return path


@dataclass
class Watched:
    lab: lab_mod.Lab
    core: client.CoreV1Api
    prom: prometheus.Prometheus
    targets: dict[str, str]

    def firing(self) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        for alert in self.prom.alerts():
            if alert["state"] == "firing":
                out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return out

    def active(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.prom.alerts()}


@pytest.fixture(scope="module")
def watched(
    tmp_path_factory: pytest.TempPathFactory, netns_privileges: None, prometheus_server: Path
) -> Iterator[Watched]:
    work = tmp_path_factory.mktemp("monitoring")
    env = {**os.environ, "LBCTL_LAB_DIR": str(work / "lab"),
           "LBCTL_LAB_PREFIX": "lm" + secrets.token_hex(2)}  # fmt: skip
    try:
        up = lab_cmd(env, "up", "--processes")  # metrics of processes, reachable here
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        the_lab = lab_mod.Lab(work / "lab", say=lambda _: None)
        state = the_lab.state()
        assert state is not None
        targets = the_lab.metrics_targets()
        assert set(targets) == {"controller", *lab_mod.NODES}
        prom = prometheus.Prometheus(
            work / "prometheus", targets, [shortened_rules(work / "rules.yaml")]
        ).start()
        api = config.new_client_from_config(config_file=state.kubeconfig)
        try:
            watched = Watched(the_lab, client.CoreV1Api(api), prom, targets)
            wait_for("Prometheus to scrape all four targets",
                     lambda: (up := prom.targets_up()) and len(up) == 4 and all(up.values()),
                     timeout=60)  # fmt: skip
            yield watched
        finally:
            api.close()
            prom.stop()
    finally:
        lab_cmd(env, "down")


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_reads_only_metrics_the_lab_serves(watched: Watched) -> None:
    served: set[str] = set()
    for target in watched.targets.values():
        with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as resp:
            served |= sample_names(resp.read().decode())
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    for expr in dashboard_queries() + [r["expr"] for r in rules]:
        unknown = metric_names(expr) - served
        assert not unknown, f"{expr!r} reads {unknown}, which no lab component serves"
        # Prometheus itself parses and runs it (Grafana fills in $__rate_interval).
        watched.prom.query(expr.replace("$__rate_interval", "1m"))


def test_the_dashboard_names_the_node_announcing_the_demo(watched: Watched) -> None:
    demo = lab_mod.wait_external_ip(watched.core, "demo", "demo", timeout=30)
    query = next(q for q in dashboard_queries() if "group_left (node) lbctl_speaker_info" in q
                 and "lbctl_speaker_announced" in q)  # fmt: skip
    rows = wait_for(
        "a row for the demo's address",
        lambda: [r for r in watched.prom.query(query) if r["metric"]["ip"] == demo],
    )
    assert [r["metric"]["node"] for r in rows] == [rows[0]["metric"]["node"]]
    assert rows[0]["metric"]["node"] in lab_mod.NODES
    assert rows[0]["metric"]["service"] == "demo/demo"


def pool_config(core: client.CoreV1Api) -> dict[str, Any]:
    cm = core.read_namespaced_config_map("lbctl-config", lab_mod.LBCTL_NS)
    parsed: dict[str, Any] = yaml.safe_load(cm.data["config.yaml"])
    return parsed


def test_exhausting_the_pool_fires_its_alerts_and_freeing_it_resolves_them(
    watched: Watched,
) -> None:
    core = watched.core
    original = pool_config(core)
    demo = ipaddress.ip_address(lab_mod.wait_external_ip(core, "demo", "demo", timeout=30))
    small = json.loads(json.dumps(original))
    v6 = [r for r in small["pools"][0]["addresses"] if ":" in r]
    small["pools"][0]["addresses"] = [f"{demo}-{demo + 1}", *v6]  # the demo's and one more
    put_config(core, lab_mod.LBCTL_NS, yaml.safe_dump(small))
    try:
        core.create_namespaced_service("demo", service("fill", selector={"app": "demo"}))
        assert wait_for("fill's address", lambda: _ips(core, "fill")) == [str(demo + 1)]
        core.create_namespaced_service("demo", service("extra", selector={"app": "demo"}))
        firing = wait_for(
            "LbctlPoolExhausted and LbctlServicesPending to fire",
            lambda: (
                (f := watched.firing()).keys() >= {"LbctlPoolExhausted", "LbctlServicesPending"}
                and f
            ),
            timeout=90,
        )
        assert {(a["pool"], a["family"]) for a in firing["LbctlPoolExhausted"]} == {("lab", "IPv4")}
        assert [a["reason"] for a in firing["LbctlServicesPending"]] == ["PoolExhausted"]
        # Nothing else is wrong in the lab, and no alert says otherwise.
        assert firing.keys() == {"LbctlPoolExhausted", "LbctlServicesPending"}, firing
    finally:
        for name in ("fill", "extra"):
            core.delete_namespaced_service(name, "demo", _preload_content=False)
        put_config(core, lab_mod.LBCTL_NS, yaml.safe_dump(original))
    wait_for("both alerts to resolve",
             lambda: not watched.active() & {"LbctlPoolExhausted", "LbctlServicesPending"},
             timeout=90)  # fmt: skip
    assert watched.active() == set()


def _ips(core: client.CoreV1Api, name: str) -> list[str]:
    svc = core.read_namespaced_service(name, "demo")
    return [i.ip for i in (svc.status.load_balancer.ingress or [])]


def test_an_invalid_config_fires_config_stale_and_fixing_it_resolves_it(
    watched: Watched,
) -> None:
    core = watched.core
    original = pool_config(core)
    broken = json.loads(json.dumps(original))
    broken["pools"][0]["adresses"] = broken["pools"][0].pop("addresses")  # a typo
    put_config(core, lab_mod.LBCTL_NS, yaml.safe_dump(broken))
    try:
        firing = wait_for("LbctlConfigStale to fire",
                          lambda: "LbctlConfigStale" in (f := watched.firing()) and f,
                          timeout=90)  # fmt: skip
        assert firing.keys() == {"LbctlConfigStale"}, firing
        reasons = [e[1] for e in events(core, lab_mod.LBCTL_NS, "lbctl-config", "ConfigMap")]
        assert "InvalidConfig" in reasons
        # The last good config stays in force: the demo still has its address.
        assert lab_mod.wait_external_ip(core, "demo", "demo", timeout=5)
    finally:
        put_config(core, lab_mod.LBCTL_NS, yaml.safe_dump(original))
    wait_for("LbctlConfigStale to resolve", lambda: "LbctlConfigStale" not in watched.active(),
             timeout=90)  # fmt: skip
