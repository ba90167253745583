"""Where control-plane binaries come from: the user's directory, then the cache, then PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import assets


def put(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        f = directory / name
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)


def test_the_user_directory_wins_over_the_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(tmp_path / "kb")}
    put(tmp_path / "kb", "kube-apiserver")
    put(assets.cache_dir(env), "kube-apiserver", "kube-proxy")
    found = assets.locate(["kube-apiserver", "kube-proxy"], env)
    assert found.origin == {"kube-apiserver": "user", "kube-proxy": "cache"}
    assert found.paths["kube-apiserver"] == tmp_path / "kb" / "kube-apiserver"


def test_lbctl_assets_dir_comes_before_kubebuilder_assets(tmp_path: Path) -> None:
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "LBCTL_ASSETS_DIR": str(tmp_path / "a"),
        "KUBEBUILDER_ASSETS": str(tmp_path / "kb"),
    }
    put(tmp_path / "a", "kube-proxy")
    put(tmp_path / "kb", "kube-proxy")
    assert assets.locate(["kube-proxy"], env).paths["kube-proxy"] == tmp_path / "a" / "kube-proxy"


def test_the_cache_is_keyed_by_the_source_version(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert assets.cache_dir(env) == (
        tmp_path / "lbctl" / f"kubernetes-{assets.KUBERNETES_SOURCE_VERSION}" / "bin"
    )


def test_a_complete_user_directory_builds_nothing(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(tmp_path / "kb")}
    put(tmp_path / "kb", *assets.ALL)
    said: list[str] = []
    paths = assets.ensure(assets.ALL, env=env, progress=said.append)
    assert set(paths) == set(assets.ALL)
    assert all("using user binary" in line for line in said)


def test_unknown_binaries_are_an_error() -> None:
    with pytest.raises(assets.AssetError, match="unknown control-plane binaries: kubelet"):
        assets.ensure(["kubelet"])
