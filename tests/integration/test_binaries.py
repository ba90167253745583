"""Where the control-plane binaries come from, end to end through ``lbctl binaries``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl import assets


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
    binaries: dict[str, Path], tmp_path: Path
) -> None:
    kb = tmp_path / "kubebuilder"
    kb.mkdir()
    for name, path in binaries.items():
        (kb / name).symlink_to(path)
    env = {**os.environ, "KUBEBUILDER_ASSETS": str(kb), "XDG_CACHE_HOME": str(tmp_path / "c")}
    run = lbctl_binaries(env)
    assert run.returncode == 0, run.stderr
    for name in assets.ALL:
        assert f"{name}: using user binary {kb / name}" in run.stderr
    assert "build Kubernetes" not in run.stderr and not (tmp_path / "c").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="building needs root (apt-get)")
def test_without_a_cache_it_builds_then_the_second_run_uses_the_cache(
    binaries: dict[str, Path], tmp_path: Path
) -> None:
    # A machine without lbctl's cache. Go's own build cache stays where it is (warm here),
    # so this takes about a minute instead of five; the steps are the same.
    gocache = subprocess.run(
        ["go", "env", "GOCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "GOCACHE": gocache}
    env.pop("KUBEBUILDER_ASSETS", None)
    env.pop("LBCTL_ASSETS_DIR", None)
    first = lbctl_binaries(env)
    assert first.returncode == 0, first.stderr[-3000:]
    for step in (
        "download Debian source package kubernetes",
        "build Kubernetes: make",
        "cached the binaries in",
    ):
        assert step in first.stderr
    second = lbctl_binaries(env)
    assert second.returncode == 0, second.stderr
    for name in assets.BUILT:
        assert f"{name}: using cache binary" in second.stderr
    assert "build Kubernetes" not in second.stderr
