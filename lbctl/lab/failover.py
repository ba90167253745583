"""Repeated failovers in a running lab, under steady client traffic (tests and benchmarks).

Each round kills the announcing node (speaker SIGKILLed, link down), waits until one other
node alone answers ARP for the address, then heals the node (link up, speaker restarted), and
waits until the address is back with it, again with one MAC answering. The client's requests
(``traffic``) give the outage of each round.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lbctl import election
from lbctl.lab import lab as lab_mod
from lbctl.lab import lan, procs, traffic

TUNED = ("--lease-duration=1", "--renew-period=0.25")  # the fast failover of docs/operations.md


@dataclass
class Round:
    victim: str
    killed_at: float
    heir: str
    heir_macs: set[str]  # MACs answering ARP once the heir took over
    back_macs: set[str]  # MACs answering once the victim is back


@dataclass
class Result:
    rounds: list[Round] = field(default_factory=list)
    outages: list[traffic.Outage] = field(default_factory=list)

    def after_kills(self) -> list[traffic.Outage]:
        """The outages that span a kill: one per round when all went well."""
        return [o for o in self.outages if any(_spans(o, r.killed_at) for r in self.rounds)]

    def after_returns(self) -> list[traffic.Outage]:
        """The others: when the healed node takes its address back."""
        return [o for o in self.outages if not any(_spans(o, r.killed_at) for r in self.rounds)]


def _spans(outage: traffic.Outage, t: float) -> bool:
    return outage.start <= t and (outage.end is None or t <= outage.end)


def address_owned_by(lab: lab_mod.Lab, node: str, first: int = 201) -> str:
    """A pool address of the lab that ``node`` wins among all nodes."""
    state = lab.state()
    assert state is not None
    gw = ipaddress.ip_network(state.subnet4).network_address
    return next(
        str(gw + n)
        for n in range(first, 251)
        if election.owner(gw + n, list(lab_mod.NODES)) == node
    )


def arp_macs(the_lan: lan.Lan, ip: str, count: int = 2, *, ifname: str = "eth0") -> set[str]:
    """MACs that answer ``arping`` from the LAN's client, asking on its link ``ifname``."""
    with the_lan.capture(
        "client", f"arp and arp[6:2] == 2 and src host {ip}", ifname=ifname
    ) as cap:
        the_lan.run(
            "client", ["arping", "-c", str(count), "-w", "2", "-I", ifname, ip], check=False
        )
    from scapy.layers.l2 import ARP

    return {p[ARP].hwsrc for p in cap.packets() if ARP in p and p[ARP].psrc == ip}


def _until(what: str, probe: Callable[[], bool], timeout: float) -> None:
    procs.wait_until(what, probe, timeout=timeout, interval=0.0)


def run(lab: lab_mod.Lab, ip: str, victim: str, rounds: int, *, url: str) -> Result:
    """``rounds`` failovers of ``ip`` away from ``victim`` and back, under client traffic."""
    state = lab.state()
    assert state is not None
    mac = {h: lab.lan().host(h).mac for h in lab_mod.NODES}
    heir = election.owner(ipaddress.ip_address(ip), [n for n in lab_mod.NODES if n != victim])
    assert heir is not None
    result = Result()
    # A file, not a pipe: nobody reads until the end, and a full pipe would stall the client.
    with tempfile.TemporaryFile("w+") as log:
        client = subprocess.Popen(
            procs.netns_argv(
                f"{state.prefix}-client",
                [sys.executable, "-m", "lbctl.lab.traffic", url, "--duration", "3600"],
            ),
            stdout=log,
        )
        try:
            _until(f"{victim} alone answers", lambda: arp_macs(lab.lan(), ip) == {mac[victim]}, 30)
            for _ in range(rounds):
                lab.stop_speaker(victim, signal.SIGKILL)
                lab.set_link(victim, up=False)
                # The node serves on until its link goes (the client's ARP cache still points
                # at it), so the outage starts here, not at the SIGKILL.
                killed_at = time.monotonic()
                _until(f"{heir} alone answers", lambda: arp_macs(lab.lan(), ip) == {mac[heir]}, 30)
                heir_macs = arp_macs(lab.lan(), ip)
                lab.set_link(victim, up=True)
                lab.restart_speaker(victim, *TUNED)
                _until(f"{victim} back", lambda: arp_macs(lab.lan(), ip) == {mac[victim]}, 30)
                back_macs = arp_macs(lab.lan(), ip)
                result.rounds.append(Round(victim, killed_at, heir, heir_macs, back_macs))
                time.sleep(1)  # the client sees a steady state before the next kill
        finally:
            crashed = client.poll()  # the client must have run all along
            client.terminate()
            try:
                client.wait(timeout=10)
            except subprocess.TimeoutExpired:
                client.kill()
            log.seek(0)
            out = log.read()
        if crashed is not None:
            raise RuntimeError(f"the traffic client stopped early (exit {crashed}): {out[-500:]}")
    samples = traffic.parse(out.splitlines())
    result.outages = traffic.outages(samples)
    return result


def tune(lab: lab_mod.Lab) -> None:
    """Every speaker with the tuned timings (a clean restart each)."""
    for host in lab_mod.NODES:
        lab.restart_speaker(host, *TUNED)
