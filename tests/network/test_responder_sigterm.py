"""The responder under ARP traffic, stopped by SIGTERM again and again: its log stays clean.

Issue 14, item 4: the wake pipe was closed while the answering thread still read it (EBADF
from that thread). No API server here: the responder alone, in a node namespace, as the
speaker runs it; tests/network/test_speaker.py does the same with whole speakers.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lbctl.lab import lan, procs

HERE = Path(__file__).parent
PROBE = str(HERE.parents[1] / "bench" / "arp_probe.py")
ROUNDS = 20


def replies_since(log: Path, offset: int) -> tuple[int, int]:
    """ARP replies the client's probe logged after byte ``offset``, and the new offset."""
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    return data.count(b'"op": 2'), offset + len(data)


def test_sigterm_during_traffic_stops_the_responder_cleanly_every_time(
    make_lan: Callable[..., lan.Lan],
) -> None:
    the_lan = make_lan(["node1", "client"])
    ip = str(the_lan.plan.subnet4.network_address + 200)
    client_ip = str(the_lan.host("client").ipv4)
    flood = the_lan.start(
        "client",
        "probe",
        [
            *(sys.executable, PROBE, "watch", "--target", ip, "--sender-ip", client_ip),
            *("--interval", "0.002", "--duration", "600"),
        ],
    )
    offset = 0
    try:
        for i in range(ROUNDS):
            child = the_lan.start(
                "node1", f"responder{i}", [sys.executable, str(HERE / "responder_main.py"), ip]
            )
            procs.wait_until(
                "the responder to answer",
                lambda child=child: "answering" in child.tail(),  # type: ignore[misc]
                timeout=20,
                watch=[child],
            )
            _, offset = replies_since(flood.log, offset)  # from now on
            procs.wait_until(
                "a reply on the client",
                lambda offset=offset: replies_since(flood.log, offset)[0] > 0,  # type: ignore[misc]
                timeout=10,
                watch=[child],
            )
            time.sleep(random.uniform(0, 0.3))  # traffic going on, at a random moment
            child.stop(timeout=10)  # SIGTERM
            assert child.popen is not None and child.popen.returncode == 0, child.tail()
            log = child.log.read_text()
            assert "stopped" in log, log
            for bad in (
                "Traceback",
                "Bad file descriptor",
                "Exception in thread",
                "WARNING",
                "ERROR",
            ):
                assert bad not in log, f"round {i}: {bad!r} in the log:\n{log}"
    finally:
        flood.stop(timeout=5)
