"""The LAN under the tests is real: frames cross the bridge, kube-proxy forwards to a backend."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from pyroute2 import IPRoute, netns
from scapy.layers.l2 import ARP, Ether

from lbctl.lab import controlplane, lan, procs


def scapy_send(the_lan: lan.Lan, host: str, expr: str) -> None:
    """Send one frame built by the scapy expression ``expr`` from ``host``'s eth0."""
    code = f"from scapy.all import *; sendp({expr}, iface='eth0', verbose=False)"
    the_lan.run(host, [sys.executable, "-c", code])


def test_arp_request_sent_from_one_node_is_captured_in_another(
    make_lan: Callable[..., lan.Lan],
) -> None:
    the_lan = make_lan(["node1", "node2"])
    n1, n2 = the_lan.host("node1"), the_lan.host("node2")
    with the_lan.capture("node2", "arp") as cap:
        scapy_send(
            the_lan,
            "node1",
            f"Ether(dst='ff:ff:ff:ff:ff:ff', src='{n1.mac}')"
            f"/ARP(op=1, hwsrc='{n1.mac}', psrc='{n1.ipv4}', pdst='{n2.ipv4}')",
        )
    requests = [p for p in cap.packets() if ARP in p and p[ARP].op == 1]
    assert any(
        p[Ether].src == n1.mac and p[ARP].psrc == str(n1.ipv4) and p[ARP].pdst == str(n2.ipv4)
        for p in requests
    ), [p.summary() for p in requests]


def test_kube_proxy_forwards_a_loadbalancer_address_to_a_backend(
    make_lan: Callable[..., lan.Lan],
    apiserver: controlplane.ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    binaries: dict[str, Path],
) -> None:
    the_lan = make_lan(["node1", "client"])
    node1 = the_lan.host("node1")
    node_name = f"{the_lan.plan.prefix}-node1"
    lb_ip = str(the_lan.plan.subnet4.network_address + 200)
    core = client.CoreV1Api(api_client)

    # The backend: a plain HTTP server in node1, standing in for a Pod.
    site = the_lan.workdir / "site"
    site.mkdir()
    (site / "index.html").write_text("hello from node1\n")
    the_lan.start(
        "node1",
        "http",
        [
            sys.executable,
            "-m",
            "http.server",
            "8080",
            "--bind",
            str(node1.ipv4),
            "--directory",
            str(site),
        ],
    )

    # kube-proxy, reaching the API server through the bridge like a real node.
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=node_name)))
    try:
        kubeconfig = apiserver.write_kubeconfig(
            the_lan.workdir / "node1.kubeconfig", host=str(the_lan.plan.gateway4)
        )
        proxy = the_lan.start(
            "node1",
            "kube-proxy",
            [
                str(binaries["kube-proxy"]),
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={node_name}",
                f"--bind-address={node1.ipv4}",
                "--proxy-mode=iptables",
                "--conntrack-max-per-core=0",
                "--cluster-cidr=10.244.0.0/16",
                "--metrics-bind-address=127.0.0.1:10249",
                "--healthz-bind-address=127.0.0.1:10256",
            ],
        )

        core.create_namespaced_service(
            namespace,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="demo"),
                spec=client.V1ServiceSpec(
                    type="LoadBalancer",
                    ports=[
                        client.V1ServicePort(name="http", port=80, target_port=8080, protocol="TCP")
                    ],
                ),
            ),
        )
        client.DiscoveryV1Api(api_client).create_namespaced_endpoint_slice(
            namespace,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "demo-1", "labels": {"kubernetes.io/service-name": "demo"}},
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [str(node1.ipv4)],
                        "conditions": {"ready": True},
                        "nodeName": node_name,
                    }
                ],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            },
        )
        core.patch_namespaced_service_status(
            "demo", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}}
        )

        def rule_programmed() -> bool:
            out = the_lan.run("node1", ["iptables-save", "-t", "nat"], check=False).stdout
            return f"{lb_ip}/32" in out

        procs.wait_until(
            "kube-proxy to program the LoadBalancer rule",
            rule_programmed,
            timeout=60,
            interval=0.2,
            watch=[proxy],
        )

        # Stand-in for ARP (the speaker's job): the client's neighbour entry names node1.
        the_lan.run(
            "client",
            [
                "ip",
                "neigh",
                "replace",
                lb_ip,
                "lladdr",
                node1.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
        deadline = time.monotonic() + 20
        while True:
            got = the_lan.run(
                "client", ["curl", "-sS", "--max-time", "2", f"http://{lb_ip}/"], check=False
            )
            if got.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got.stdout == "hello from node1\n", got.stderr
    finally:
        core.delete_node(node_name)


KEEPER = """
import sys, time
from pathlib import Path
from lbctl.lab import lan
the_lan = lan.create(["node1"], Path(sys.argv[1]), down=["touch", sys.argv[2]])
print(the_lan.plan.prefix, flush=True)
time.sleep(600)
"""


def test_a_lan_whose_keeper_was_killed_is_removed_by_the_next_one_made(
    make_lan: Callable[..., lan.Lan], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A test run or benchmark killed with SIGKILL cannot clean up; its LAN would hold the
    range until someone noticed (CI once waited on one until it timed out)."""
    marker = tmp_path / "down-ran"
    env = {k: v for k, v in os.environ.items() if k != "LBCTL_LAN_KEEPER"}  # its own keeper
    log = tmp_path / "keeper.log"
    argv = [sys.executable, "-c", KEEPER, str(tmp_path / "lan"), str(marker)]
    keeper = procs.Process("keeper", argv, log=log, env=env).start()
    try:
        procs.wait_until("the LAN", lambda: bool(_first_line(log)), timeout=120, watch=[keeper])
        prefix = _first_line(log)
        lan.remove_abandoned()  # its keeper runs: kept
        assert f"{prefix}-node1" in netns.listnetns()
    finally:
        keeper.kill()  # SIGKILL: no chance to clean up

    the_lan = make_lan(["node1"])  # this range was the killed one's (only one is free here)

    assert f"{prefix}-node1" not in netns.listnetns()
    with IPRoute() as ipr:
        assert not ipr.link_lookup(ifname=f"{prefix}br")
    assert marker.exists()  # its `down` ran first
    assert not (lan.RECORDS / f"{prefix}.json").exists()
    assert (lan.RECORDS / f"{the_lan.plan.prefix}.json").exists()
    assert f"removing LAN {prefix}" in capfd.readouterr().err


def _first_line(log: Path) -> str:
    lines = log.read_text().split() if log.exists() else []
    return lines[0] if lines else ""
