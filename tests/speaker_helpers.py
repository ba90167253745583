"""A LAN of node namespaces running real ``lbctl speaker`` processes, seen from a client."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kube_helpers import check_findings, wait_for
from kubernetes import client

from lbctl import election, leases
from lbctl.lab import failover, lan, procs


@dataclass
class SpeakerLan:
    lan: lan.Lan
    core: client.CoreV1Api
    namespace: str
    kubeconfig: str
    nodes: list[str]  # host names in the LAN: node1, node2, ...
    speakers: dict[str, procs.Process] = field(default_factory=dict)

    def kubeconfig_port(self) -> int:
        """The API server's port, as the nodes reach it."""
        text = Path(self.kubeconfig).read_text()
        server = next(line for line in text.splitlines() if "server:" in line)
        return int(server.rsplit(":", 1)[1])

    def node_name(self, host: str) -> str:
        return f"{self.lan.plan.prefix}-{host}"

    def host_of(self, node_name: str) -> str:
        return node_name.removeprefix(f"{self.lan.plan.prefix}-")

    def mac(self, host: str) -> str:
        return self.lan.host(host).mac

    def ip4(self, n: int) -> str:
        return str(self.lan.plan.subnet4.network_address + n)

    def ip6(self, n: int) -> str:
        return str(self.lan.plan.subnet6.network_address + n)

    def pool(self, extra: str = "") -> str:
        return (
            f"pools: [{{name: lan, addresses: ['{self.ip4(200)}-{self.ip4(220)}', "
            f"'{self.ip6(0x200)}-{self.ip6(0x220)}']}}]\n"
            "announce: {garp: {rounds: 3, intervalMs: 1100, refreshSeconds: 5}" + extra + "}\n"
        )

    def start(self, host: str, *extra: str, wrapper: tuple[str, ...] = ()) -> procs.Process:
        proc = self.lan.start(
            host,
            f"speaker{len(self.speakers)}",
            [
                *wrapper,
                sys.executable,
                "-m",
                "lbctl",
                "speaker",
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={self.namespace}",
                f"--node-name={self.node_name(host)}",
                "--metrics-address=127.0.0.1",
                "--metrics-port=7473",
                "--log-level=debug",
                "--lease-duration=2",
                "--renew-period=0.4",
                *extra,
            ],
        )
        self.speakers[host] = proc
        return proc

    def live_speakers(self) -> set[str]:
        """Speakers whose Lease makes them candidates (not those still starting)."""
        found = (
            client.CoordinationV1Api(self.core.api_client)
            .list_namespaced_lease(self.namespace)
            .items
        )
        return {
            lease.spec.holder_identity
            for lease in found
            if leases.JOINING not in (lease.metadata.annotations or {})
        }

    def start_all(self, *extra: str, wrapper: tuple[str, ...] = ()) -> None:
        for host in self.nodes:
            self.start(host, *extra, wrapper=wrapper)
        want = {self.node_name(h) for h in self.nodes}
        wait_for("every speaker's Lease", lambda: self.live_speakers() >= want)

    def expected_owner(self, ip: str, hosts: list[str] | None = None) -> str:
        names = [self.node_name(h) for h in (hosts or self.nodes)]
        owner = election.owner(ipaddress.ip_address(ip), names)
        assert owner is not None
        return self.host_of(owner)

    def lb_service(self, name: str, ips: list[str], **spec: Any) -> None:
        self.core.create_namespaced_service(
            self.namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "type": "LoadBalancer",
                    "ports": [{"port": 80, "protocol": "TCP"}],
                    **spec,
                },
            },
        )
        self.set_status(name, ips)

    def set_status(self, name: str, ips: list[str]) -> None:
        self.core.patch_namespaced_service_status(
            name,
            self.namespace,
            {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}},
        )

    def management_path(self, host: str) -> None:
        """A second link from ``host`` to the API server, as a management network: then the
        node can lose the LAN and keep the API. Goes with the namespace (its peer with it)."""
        n = self.nodes.index(host) + 1
        ns, root_end, ip = (
            self.lan.host(host).netns,
            f"{self.lan.plan.prefix}mg{n}",
            self.ip4(240 + n),
        )
        gateway = str(self.lan.plan.gateway4)
        for argv in (
            ["ip", "link", "add", root_end, "type", "veth", "peer", "name", "mgmt0", "netns", ns],
            ["ip", "link", "set", root_end, "up"],
            ["ip", "route", "add", f"{ip}/32", "dev", root_end],  # our LAN's range, one host
            ["ip", "-n", ns, "link", "set", "mgmt0", "up"],
            ["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "mgmt0"],
            ["ip", "-n", ns, "route", "add", f"{gateway}/32", "dev", "mgmt0", "src", ip],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    def check(self) -> list[tuple[str, str]]:
        """``lbctl check`` findings (kind, subject) for this LAN's namespace."""
        return check_findings(self.kubeconfig, self.namespace)

    def accused(self) -> set[str]:
        """Speakers some peer's Lease names as not heard on the LAN (``leases.UNHEARD``)."""
        found = (
            client.CoordinationV1Api(self.core.api_client)
            .list_namespaced_lease(self.namespace)
            .items
        )
        named = ((lease.metadata.annotations or {}).get(leases.UNHEARD, "") for lease in found)
        return {n for text in named for n in text.split(",") if n}

    def lease_holders(self) -> set[str]:
        return {self.host_of(n) for n in self.live_speakers()}

    def kill(self, host: str, *, link_down: bool = True) -> None:
        """The node dies: its speaker gets SIGKILL and its link goes down."""
        self.speakers[host].signal(signal.SIGKILL)
        if link_down:
            self.lan.run(host, ["ip", "link", "set", "eth0", "down"])

    def arp_replies(self, ip: str, count: int = 3, *, ifname: str = "eth0") -> set[str]:
        """MACs that answer ``arping`` from the client (on its link ``ifname``)."""
        return failover.arp_macs(self.lan, ip, count, ifname=ifname)

    @contextlib.contextmanager
    def second_segment(self) -> Iterator[dict[str, str]]:
        """A second LAN segment: a bridge of its own and an ``eth1`` in every host on it (the
        client's with the address ``ip4(250)/32`` to ask from). Yields host → its eth1 MAC;
        the bridge goes afterwards (each eth1 goes with its namespace)."""
        bridge = f"{self.lan.plan.prefix}b2"
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        try:
            subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
            macs = {}
            for n, host in enumerate([*self.nodes, "client"]):
                root_end, ns = f"{self.lan.plan.prefix}s{n}", self.lan.host(host).netns
                for argv in (
                    ["ip", "link", "add", root_end, "type", "veth", "peer", "name", "eth1",
                     "netns", ns],
                    ["ip", "link", "set", root_end, "master", bridge, "up"],
                    ["ip", "-n", ns, "link", "set", "eth1", "up"],
                ):  # fmt: skip
                    subprocess.run(argv, check=True, capture_output=True)
                shown = self.lan.run(host, ["ip", "-j", "link", "show", "eth1"]).stdout
                macs[host] = json.loads(shown)[0]["address"]
            self.lan.run("client", ["ip", "addr", "add", f"{self.ip4(250)}/32", "dev", "eth1"])
            yield macs
        finally:
            subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
