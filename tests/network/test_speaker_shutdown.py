"""A speaker stopped by SIGTERM during ARP traffic, twenty times: its log has no traceback
(issue 14, item 4: the responder's wake pipe was closed under its thread)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kube_helpers import wait_for
from speaker_helpers import SpeakerLan

PROBE = str(Path(__file__).parents[2] / "bench" / "arp_probe.py")
ROUNDS = 20

pytestmark = pytest.mark.slow  # about four minutes


def test_sigterm_during_traffic_leaves_a_clean_log_every_time(
    speaker_lan: Callable[..., SpeakerLan],
) -> None:
    sl = speaker_lan(1)
    ip = sl.ip4(209)
    sl.lb_service("web", [ip])
    flood = sl.lan.start(
        "client",
        "probe",
        [
            *(sys.executable, PROBE, "watch", "--target", ip),
            *("--sender-ip", str(sl.lan.host("client").ipv4), "--interval", "0.002"),
            *("--duration", "900"),
        ],
    )
    try:
        for i in range(ROUNDS):
            log = sl.lan.workdir / f"node1-speaker{len(sl.speakers)}.log"
            start = log.stat().st_size if log.exists() else 0
            proc = sl.start("node1")
            assert proc.log == log
            wait_for(
                f"round {i}: answering",
                lambda: sl.arp_replies(ip, 1) == {sl.mac("node1")},
                timeout=60,
            )
            proc.stop(timeout=15)  # SIGTERM, with requests arriving every 2 ms
            assert proc.popen is not None and proc.popen.returncode == 0, proc.tail()
            with open(proc.log, "rb") as f:
                f.seek(start)
                this_run = f.read().decode(errors="replace")
            for bad in ("Traceback", "Bad file descriptor", "Exception in thread", " ERROR "):
                assert bad not in this_run, f"round {i}: {bad!r}:\n{this_run}"
            wait_for("the Lease given back", lambda: not sl.lease_holders(), timeout=10)
    finally:
        flood.stop(timeout=5)
