"""The real-node lab's pure parts: the kustomize overlay, the demo, the ARP watch's verdicts."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml

from lbctl import config
from lbctl.lab import arpwatch, cluster, lan, plan
from lbctl.lab.arpwatch import Answers

REPO = Path(__file__).resolve().parents[2]


def lan_plan() -> plan.LanPlan:
    return plan.plan_lan(
        "r11",
        ["node1", "client"],
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("2001:db8:100::/64"),
    )


def test_the_lab_pool_is_a_valid_config_on_the_lan() -> None:
    text = cluster.pool_yaml(lan_plan())
    parsed = config.parse_yaml(text)
    assert [p.name for p in parsed.pools] == ["lab"]
    assert "198.51.100.200-198.51.100.250" in text and "2001:db8:100::200-2001:db8:100::2ff" in text


def test_the_overlay_changes_the_pool_and_nothing_else(tmp_path: Path) -> None:
    overlay_dir = tmp_path / "lab" / "overlay"
    overlay_dir.mkdir(parents=True)
    text = cluster.overlay(REPO / "deploy", overlay_dir, cluster.pool_yaml(lan_plan()))
    doc = yaml.safe_load(text)
    [base] = doc["resources"]
    assert not Path(base).is_absolute()  # kustomize refuses absolute bases
    assert (overlay_dir / base).resolve() == (REPO / "deploy").resolve()
    [patch] = doc["patches"]
    target = yaml.safe_load(patch["patch"])
    assert target["kind"] == "ConfigMap" and target["metadata"]["name"] == "lbctl-config"
    assert set(target) == {"apiVersion", "kind", "metadata", "data"}
    assert config.parse_yaml(target["data"]["config.yaml"]).pools[0].name == "lab"


def test_the_overlay_builds_with_kubectl_kustomize(tmp_path: Path) -> None:
    from lbctl.lab import assets

    kubectl = assets.locate(["kubectl"]).paths.get("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here")
    overlay_dir = tmp_path / "overlay"
    overlay_dir.mkdir()
    (overlay_dir / "kustomization.yaml").write_text(
        cluster.overlay(REPO / "deploy", overlay_dir, cluster.pool_yaml(lan_plan()))
    )
    built = subprocess.run(
        [str(kubectl), "kustomize", str(overlay_dir)], capture_output=True, text=True, check=True
    ).stdout
    base = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "deploy")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs, base_docs = list(yaml.safe_load_all(built)), list(yaml.safe_load_all(base))
    changed = [d["metadata"]["name"] for d, b in zip(docs, base_docs, strict=True) if d != b]
    assert changed == ["lbctl-config"]


def test_the_demo_spreads_three_pods_over_the_nodes_and_names_the_pod() -> None:
    dep = cluster.demo_deployment("lbctl:0.1.0")
    assert dep["spec"]["replicas"] == 3
    spec = dep["spec"]["template"]["spec"]
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert "POD_NAME" in spec["containers"][0]["command"][2]
    compile(cluster.DEMO_SERVER, "demo", "exec")  # the server script is valid Python


def answers(*rows: tuple[float, list[str]]) -> list[Answers]:
    return [Answers(t, tuple(m)) for t, m in rows]


@pytest.mark.parametrize(
    ("rows", "runs", "conflicts"),
    [
        pytest.param([(0, ["a"]), (1, ["a"])], [("a", 0, 1)], 0, id="one owner throughout"),
        pytest.param(
            [(0, ["a"]), (1, []), (2, ["b"]), (3, ["b"]), (4, ["a"])],
            [("a", 0, 0), ("b", 2, 3), ("a", 4, 4)],
            0,
            id="a silent request is a gap, not an owner",
        ),
        pytest.param(
            [(0, ["a"]), (1, ["a", "b"]), (2, ["b"])],
            [("a", 0, 0), ("b", 2, 2)],
            0,
            id="the handover: old owner first, new owner last, in one request",
        ),
        pytest.param(
            [(0, ["a"]), (1, ["b", "a"]), (2, ["b"])],
            [("a", 0, 0), ("b", 2, 2)],
            1,
            id="the old owner answering after the new one is a conflict",
        ),
        pytest.param(
            [(0, ["a"]), (1, ["a", "b"]), (2, ["a", "b"]), (3, ["b"])],
            [("a", 0, 0), ("b", 3, 3)],
            2,
            id="two MACs on consecutive requests is a conflict",
        ),
        pytest.param(
            [(0, ["a"]), (1, ["a", "b"]), (2, ["a"])],
            [("a", 0, 2)],
            1,
            id="a second MAC that does not stay is a conflict",
        ),
    ],
)
def test_the_arp_watch_tells_owners_and_conflicts(
    rows: list[tuple[float, list[str]]], runs: list[tuple[str, float, float]], conflicts: int
) -> None:
    got = answers(*rows)
    assert arpwatch.answered_by(got) == runs
    assert len(arpwatch.conflicts(got)) == conflicts


def test_arp_watch_lines_parse_and_a_cut_line_is_skipped() -> None:
    lines = ['{"t": 1.5, "macs": ["02:1b:00:00:00:0a"]}', '{"t": 1.7, "ma']
    assert arpwatch.parse(lines) == [Answers(1.5, ("02:1b:00:00:00:0a",))]


def test_the_longest_silence_is_between_answered_requests() -> None:
    got = answers((0, ["a"]), (0.2, []), (0.4, []), (0.6, ["b"]), (0.8, ["b"]))
    assert arpwatch.longest_silence(got) == pytest.approx(0.6)
    assert arpwatch.longest_silence(answers((0, []))) == 0.0


def test_a_link_brought_back_up_gets_its_ipv6_address_and_default_routes_back() -> None:
    p = lan_plan()
    node = p.hosts[0]
    cmds = lan.relink_commands(p, node)
    assert cmds[0] == ["ip", "link", "set", "eth0", "up"]  # first: the rest needs the link
    assert ["ip", "-6", "addr", "replace", f"{node.ipv6}/64", "dev", "eth0", "nodad"] in cmds
    assert ["ip", "route", "replace", "default", "via", str(p.gateway4)] in cmds
    assert ["ip", "-6", "route", "replace", "default", "via", str(p.gateway6)] in cmds
