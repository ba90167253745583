"""The lbctl command: validate checks a config offline with the controller's parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import cli

GOOD = "pools: [{name: lan, addresses: [198.51.100.0/28, '2001:db8::/64']}]\n"


def test_validate_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(GOOD)
    assert cli.main(["validate", str(f)]) == 0
    out = capsys.readouterr().out
    assert "pool lan: 2 range(s), IPv4: 16, IPv6: 18446744073709551616" in out
    assert out.rstrip().endswith("valid")


def test_validate_a_whole_configmap_manifest(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lbctl-config}\n"
        f"data:\n  config.yaml: |\n    {GOOD}"
    )
    assert cli.main(["validate", str(f)]) == 0


def test_validate_reports_every_problem_with_its_path_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("pools:\n  - name: a\n    addresses: [198.51.100.9-198.51.100.1]\n    x: 1\n")
    assert cli.main(["validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"{f}: pools[0].x: unknown key" in err


def test_validate_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "/nonexistent/config.yaml"]) == 2
    assert "cannot read" in capsys.readouterr().err
