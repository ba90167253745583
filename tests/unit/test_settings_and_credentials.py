"""Settings come from flags, then LBCTL_* variables, then defaults; credentials like kubectl."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lbctl import settings
from lbctl.kube import client as kclient


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    settings.add_flags(p, settings.CommonSettings)
    return p.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        pytest.param([], {}, "lbctl-system", id="the default"),
        pytest.param([], {"LBCTL_NAMESPACE": "from-env"}, "from-env", id="env over default"),
        pytest.param(
            ["--namespace", "from-flag"],
            {"LBCTL_NAMESPACE": "from-env"},
            "from-flag",
            id="flag over env",
        ),
    ],
)
def test_flags_then_environment_then_defaults(
    argv: list[str], env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert settings.load(settings.CommonSettings, parse(argv)).namespace == expected


def test_every_setting_has_a_flag() -> None:
    assert parse(["--kubeconfig", "k", "--log-level", "debug"]).kubeconfig == "k"


HOME = Path("/nonexistent/.kube/config")


@pytest.mark.parametrize(
    ("flag", "env", "in_cluster", "home_exists", "source"),
    [
        pytest.param(
            "f",
            {"KUBECONFIG": "e"},
            True,
            True,
            kclient.Source.FLAG,
            id="--kubeconfig wins over everything",
        ),
        pytest.param(
            None,
            {"KUBECONFIG": "e"},
            True,
            True,
            kclient.Source.ENV,
            id="KUBECONFIG wins over in-cluster",
        ),
        pytest.param(
            None, {}, True, True, kclient.Source.IN_CLUSTER, id="in a Pod, the service account"
        ),
        pytest.param(None, {}, False, True, kclient.Source.HOME, id="else ~/.kube/config"),
    ],
)
def test_credentials_are_chosen_like_kubectl(
    flag: str | None,
    env: dict[str, str],
    in_cluster: bool,
    home_exists: bool,
    source: kclient.Source,
    tmp_path: Path,
) -> None:
    home = tmp_path / "config"
    if home_exists:
        home.write_text("")
    assert kclient.choose(flag, env, in_cluster=in_cluster, home_config=home).source is source


def test_no_credentials_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(kclient.NoCredentials, match="pass --kubeconfig, set KUBECONFIG"):
        kclient.choose(None, {}, in_cluster=False, home_config=tmp_path / "none")
