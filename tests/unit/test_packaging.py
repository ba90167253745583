"""What the release installs: the runtime only; the test bed is the ``lab`` extra."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from lbctl import cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_dependencies_leave_out_the_test_bed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["dependencies"]}
    assert not names & {"scapy", "tenacity"}
    assert {"scapy", "tenacity"} <= {
        re.split(r"[<>=\[ ]", d)[0].lower() for d in project["optional-dependencies"]["lab"]
    }


def test_the_image_installs_without_the_lab_extra_and_without_the_lab() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "rm -rf lbctl/lab" in dockerfile
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs and all("[" not in line for line in installs)


@pytest.mark.parametrize("argv", [["lab", "status"], ["binaries"]])
def test_lab_commands_without_the_lab_say_how_to_get_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("lbctl.lab", "lbctl.lab.assets", "lbctl.lab.lab"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    assert cli.main(argv) == 2
    assert "pip install 'lbctl[lab]'" in capsys.readouterr().err
