"""The Helm chart, rendered by the real helm: it lints, its default render is the kustomize base,
its values reach the objects, and values.schema.json refuses what lbctl would refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_helpers import CHART, DEPLOY, comparable, find, kustomize, render, run

from lbctl import config

REF_RULES = DEPLOY / "monitoring" / "lbctl-rules.yaml"
REF_DASHBOARD = DEPLOY / "monitoring" / "lbctl-dashboard.json"


def test_helm_lint_passes_strictly(helm: Path) -> None:
    got = run(helm, "lint", str(CHART), "--strict")
    assert "0 chart(s) failed" in got.stdout


def test_the_default_render_describes_the_objects_of_the_kustomize_base(
    helm: Path, binaries: dict[str, Path]
) -> None:
    base = comparable(kustomize(binaries["kubectl"]))
    chart = comparable(render(helm))
    # With Helm the Namespace belongs to `helm install --create-namespace` (the release is
    # stored in it, so it must exist first); createNamespace renders it for GitOps tools.
    namespace = ("Namespace", "", "lbctl-system")
    assert set(base) - set(chart) == {namespace}
    assert set(chart) - set(base) == set()
    for k, obj in chart.items():
        assert obj == base[k], k
    with_ns = comparable(render(helm, "--set", "createNamespace=true"))
    assert with_ns == base


def test_the_chart_version_is_lbctls_version(helm: Path) -> None:
    from importlib import metadata

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == metadata.version("lbctl")
    images = {c["image"] for o in render(helm) if o["kind"] in ("Deployment", "DaemonSet")
              for c in o["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert images == {f"lbctl:{chart['appVersion']}"}


def container(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    obj = next(o for o in objs if o["kind"] == kind)
    c: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return c


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c["env"]}


VALUE_CASES = [
    (
        "controller.replicas sets the Deployment's replicas",
        ["--set", "controller.replicas=3"],
        lambda objs: find(objs, "Deployment", "lbctl-controller")["spec"]["replicas"] == 3,
    ),
    (
        "image repository and tag name the image of both components",
        ["--set", "image.repository=registry.example/lbctl", "--set", "image.tag=0.2.0"],
        lambda objs: {container(objs, k)["image"] for k in ("Deployment", "DaemonSet")}
        == {"registry.example/lbctl:0.2.0"},
    ),
    (
        "speaker tolerations replace the default (every NoSchedule taint)",
        ["--set-json", 'speaker.tolerations=[{"key":"edge","operator":"Exists"}]'],
        lambda objs: find(objs, "DaemonSet", "lbctl-speaker")["spec"]["template"]["spec"][
            "tolerations"
        ]
        == [{"key": "edge", "operator": "Exists"}],
    ),
    (
        "a speaker nodeSelector keeps speakers to the nodes that may announce",
        ["--set", "speaker.nodeSelector.lan=front"],
        lambda objs: find(objs, "DaemonSet", "lbctl-speaker")["spec"]["template"]["spec"][
            "nodeSelector"
        ]
        == {"lan": "front"},
    ),
    (
        "speaker resources merge over the defaults, and the controller's stay",
        ["--set-json", 'speaker.resources={"requests":{"cpu":"10m","memory":"50Mi"}}'],
        lambda objs: container(objs, "DaemonSet")["resources"]
        == {"requests": {"cpu": "10m", "memory": "50Mi"}, "limits": {"memory": "200Mi"}}
        and container(objs, "Deployment")["resources"]["requests"]["cpu"] == "50m",
    ),
    (
        "a metrics port moves the setting and the container port together",
        ["--set", "speaker.metricsPort=9473"],
        lambda objs: env(container(objs, "DaemonSet"))["LBCTL_METRICS_PORT"] == "9473"
        and container(objs, "DaemonSet")["ports"] == [{"name": "metrics", "containerPort": 9473}],
    ),
    (
        "logFormat json reaches both components",
        ["--set", "logFormat=json"],
        lambda objs: {
            env(container(objs, k))["LBCTL_LOG_FORMAT"] for k in ("Deployment", "DaemonSet")
        }
        == {"json"},
    ),
    (
        "a dual-stack pool config becomes the ConfigMap lbctl reads",
        ["--set-json", 'config={"pools":[{"name":"v4","addresses":["198.51.100.0/28"]},'
         '{"name":"v6","addresses":["2001:db8::/64"],"autoAssign":false}],'
         '"announce":{"garp":{"rounds":3}}}'],
        lambda objs: [p.name for p in config.parse_configmap(
            find(objs, "ConfigMap", "lbctl-config")["data"]).pools] == ["v4", "v6"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("says", "args", "holds"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_reach_the_objects(helm: Path, says: str, args: list[str], holds: Any) -> None:
    assert holds(render(helm, *args)), says


def test_monitoring_objects_carry_the_shipped_rules_and_dashboard(helm: Path) -> None:
    objs = render(
        helm,
        "--set", "metrics.podMonitor.enabled=true",
        "--set", "metrics.prometheusRule.enabled=true",
        "--set", "metrics.prometheusRule.labels.release=prom",
        "--set", "metrics.dashboard.enabled=true",
    )  # fmt: skip
    rule = find(objs, "PrometheusRule", "lbctl")
    assert rule["spec"] == yaml.safe_load(REF_RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "prom"
    board = find(objs, "ConfigMap", "lbctl-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["lbctl-dashboard.json"]) == json.loads(
        REF_DASHBOARD.read_text()
    )
    monitor = find(objs, "PodMonitor", "lbctl")
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "lbctl"}}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert {o["kind"] for o in render(helm)}.isdisjoint({"PrometheusRule", "PodMonitor"})


def pool(**fields: Any) -> str:
    return json.dumps({"pools": [{"name": "lan", "addresses": ["198.51.100.0/28"], **fields}]})


# (says, --set-json value for `config`, what helm names); lbctl validate refuses each too
SCHEMA_CASES = [
    ("a pool name that is not a DNS label", pool(name="Lan"), "/config/pools/0/name"),
    ("a misspelt pool key", pool(autoassign=False), "autoassign"),
    ("a pool without addresses", pool(addresses=[]), "/config/pools/0/addresses"),
    ("a priority given as a string", pool(priority="1"), "/config/pools/0/priority"),
    (
        "gratuitous rounds closer than Linux's 1 s locktime",
        json.dumps({"pools": [], "announce": {"garp": {"intervalMs": 1000}}}),
        "/config/announce/garp/intervalMs",
    ),
    (
        "a selector operator Kubernetes does not have",
        pool(serviceSelector={"matchExpressions": [{"key": "a", "operator": "Is"}]}),
        "operator",
    ),
    (
        "a config without pools (null removes the default)",
        json.dumps({"pools": None}),
        "pools",
    ),
]


@pytest.mark.parametrize(("says", "value", "names"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_the_schema_refuses_a_bad_pool_config_before_anything_is_applied(
    helm: Path, says: str, value: str, names: str
) -> None:
    got = run(helm, "template", "lbctl", str(CHART), "--set-json", f"config={value}", check=False)
    assert got.returncode != 0, says
    assert "schema" in got.stderr and names in got.stderr, got.stderr
    with pytest.raises(config.ConfigError):  # the schema refuses nothing lbctl would accept
        config.parse_configmap({"config.yaml": yaml.safe_dump(json.loads(value))})


@pytest.mark.parametrize(
    ("says", "args", "names"),
    [
        ("a misspelt top-level value", ["--set", "replicas=3"], "replicas"),
        ("a log format lbctl does not have", ["--set", "logFormat=xml"], "logFormat"),
        ("a port out of range", ["--set", "controller.metricsPort=70000"], "metricsPort"),
    ],
)
def test_the_schema_refuses_other_bad_values(
    helm: Path, says: str, args: list[str], names: str
) -> None:
    got = run(helm, "template", "lbctl", str(CHART), *args, check=False)
    assert got.returncode != 0 and names in got.stderr, (says, got.stderr)
