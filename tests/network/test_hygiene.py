"""Fixtures clean up after failing tests: no namespace, link or process is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pyroute2 import IPRoute, netns

from lbctl.lab import procs

TESTS = Path(__file__).parent.parent


def test_failing_tests_leave_nothing_behind(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    env = {**os.environ, "LBCTL_SELFTEST": "1", "LBCTL_SELFTEST_REPORT": str(report)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(TESTS / "selftest"),
            "--basetemp",
            str(tmp_path / "base"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 failed" in run.stdout, run.stdout[-3000:]
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    pids = [pid for line in lines for pid in line["pids"]]
    prefixes = [line["prefix"] for line in lines if "prefix" in line]
    assert len(pids) >= 4 and prefixes

    assert [pid for pid in pids if procs.running(pid)] == []
    assert [n for n in netns.listnetns() if n.startswith(tuple(prefixes))] == []
    with IPRoute() as ipr:
        links = [link.get("ifname") for link in ipr.link("dump")]
    assert [name for name in links if name.startswith(tuple(prefixes))] == []
