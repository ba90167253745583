"""Tests that fail on purpose inside each fixture; run only by tests/network/test_hygiene.py.

Each writes what its fixture made (PIDs, name prefixes) to $LBCTL_SELFTEST_REPORT, then fails,
so the parent can check that the fixtures removed all of it anyway.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from lbctl.lab import controlplane, lan


def report(**what: object) -> None:
    with open(os.environ["LBCTL_SELFTEST_REPORT"], "a") as f:
        f.write(json.dumps(what) + "\n")


def test_fails_with_the_apiserver(apiserver: controlplane.ControlPlane) -> None:
    report(pids=[p.pid for p in apiserver.processes])
    raise AssertionError("on purpose, with the control plane running")


def test_fails_with_a_lan_and_a_process_in_it(make_lan: Callable[..., lan.Lan]) -> None:
    the_lan = make_lan(["node1", "client"])
    proc = the_lan.start("node1", "sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
    with the_lan.capture("client", "arp") as cap:
        report(prefix=the_lan.plan.prefix, pids=[proc.pid, cap.proc.pid])
        raise AssertionError("on purpose, inside a capture, with a LAN and a process")
