"""The README's first command: ``lbctl lab up`` gives a demo reachable on its EXTERNAL-IP."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from lbctl.lab import lan, procs


def lab(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbctl", "lab", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def lab_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if lan.missing_privileges():
        pytest.skip(str(lan.missing_privileges()))
    env = {
        **os.environ,
        "LBCTL_LAB_DIR": str(tmp_path / "lab"),
        "LBCTL_LAB_PREFIX": "le" + secrets.token_hex(2),
    }
    try:
        yield env
    finally:
        lab(env, "down", timeout=120)  # every scenario ends with the lab torn down


def curl(prefix: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", f"{prefix}-client", "curl", "-sS", "--max-time", "2", url],
        capture_output=True,
        text=True,
        check=False,
    )


def test_lab_up_serves_the_demo_on_its_external_ip_and_down_removes_everything(
    lab_env: dict[str, str],
) -> None:
    up = lab(lab_env, "up")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "EXTERNAL-IP" in up.stdout
    state = json.loads((Path(lab_env["LBCTL_LAB_DIR"]) / "state.json").read_text())
    prefix = state["prefix"]
    svc = json.loads(
        lab(lab_env, "kubectl", "get", "svc", "-n", "demo", "demo", "-o", "json").stdout
    )
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    got = curl(prefix, f"http://{ip}/")
    assert "hello from the lbctl lab demo" in got.stdout, got.stderr
    # All of that happened with RBAC enforced: controller and speakers use their own tokens.
    lab_dir = Path(lab_env["LBCTL_LAB_DIR"])
    assert "name: lbctl-controller" in (lab_dir / "controller.kubeconfig").read_text()
    assert "name: lbctl-speaker" in (lab_dir / "speaker.kubeconfig").read_text()
    who = lab(
        lab_env,
        "kubectl",
        "auth",
        "can-i",
        "get",
        "secrets",
        "-A",
        "--as=system:serviceaccount:lbctl-system:lbctl-controller",
    )
    assert who.stdout.strip() == "no"

    again = lab(lab_env, "up")  # idempotent
    assert again.returncode == 0 and "already up" in again.stdout
    assert lab(lab_env, "status").returncode == 0

    pids = [p["pid"] for p in state["processes"]]
    down = lab(lab_env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    time.sleep(0.2)
    assert [p for p in pids if procs.running(p)] == []
    assert [n for n in netns.listnetns() if n.startswith(prefix)] == []
    with IPRoute() as ipr:
        assert [
            link.get("ifname")
            for link in ipr.link("dump")
            if str(link.get("ifname")).startswith(prefix)
        ] == []
    assert not Path(lab_env["LBCTL_LAB_DIR"]).exists()
