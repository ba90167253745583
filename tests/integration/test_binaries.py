"""Where the control-plane binaries come from, end to end through ``lbctl binaries``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lbctl.lab import assets


def lbctl_binaries(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbctl", "binaries"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )


def test_a_complete_assets_directory_means_nothing_is_built(
    binaries: dict[str, Path], helm: Path, tmp_path: Path
) -> None:
    kb = tmp_path / "kubebuilder"
    kb.mkdir()
    for name, path in {**binaries, "helm": helm}.items():
        (kb / name).symlink_to(path)
    env = {**os.environ, "KUBEBUILDER_ASSETS": str(kb), "XDG_CACHE_HOME": str(tmp_path / "c")}
    run = lbctl_binaries(env)
    assert run.returncode == 0, run.stderr
    for name in assets.KNOWN:
        assert f"{name}: using user binary {kb / name}" in run.stderr
    assert "build Kubernetes" not in run.stderr and not (tmp_path / "c").exists()


def test_without_a_cache_it_builds_then_the_second_run_uses_the_cache(
    binaries: dict[str, Path], helm: Path, tmp_path: Path
) -> None:
    # A machine without lbctl's cache. Go's own module and build caches stay where they are
    # (warm here), so this takes a minute or two instead of a quarter of an hour; the steps
    # are the same.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for name in ("GOCACHE", "GOMODCACHE"):
        env[name] = subprocess.run(
            [assets.find_go(env), "env", name], capture_output=True, text=True, check=True
        ).stdout.strip()
    env.pop("KUBEBUILDER_ASSETS", None)
    env.pop("LBCTL_ASSETS_DIR", None)
    first = lbctl_binaries(env)
    assert first.returncode == 0, first.stderr[-3000:]
    version = assets.kube_version(env)
    for step in (
        f"fetch k8s.io/kubernetes@{version} from the Go module proxy",
        f"build Kubernetes {version}: ",
        f"build etcd {assets.etcd_version(env)}: ",
        f"build helm {assets.helm_version(env)}: ",
        "cached kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, "
        "kubectl in",
    ):
        assert step in first.stderr
    built = {
        n: Path(line.split("\t")[1])
        for line in first.stdout.splitlines()
        for n in [line.split("\t")[0]]
    }
    kubectl = subprocess.run(
        [str(built["kubectl"]), "version", "--client"], capture_output=True, text=True, check=True
    )
    assert f"Client Version: {version}" in kubectl.stdout
    helm = subprocess.run([str(built["helm"]), "version"], capture_output=True, text=True)
    assert f'Version:"{assets.helm_version(env)}"' in helm.stdout
    second = lbctl_binaries(env)
    assert second.returncode == 0, second.stderr
    for name in assets.KNOWN:
        assert f"{name}: using cache binary" in second.stderr
    assert "build Kubernetes" not in second.stderr
