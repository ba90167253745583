"""The process lab (`lbctl lab up --processes`): the demo on its EXTERNAL-IP, faults, Helm."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import check_findings, wait_for, wait_hello
from kubernetes import client, config
from pyroute2 import IPRoute, netns

from lbctl.lab import assets, failover, lan, procs, traffic
from lbctl.lab import lab as lab_mod


def lab(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbctl", "lab", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def lab_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if lan.missing_privileges():
        pytest.skip(str(lan.missing_privileges()))
    env = {
        **os.environ,
        "LBCTL_LAB_DIR": str(tmp_path / "lab"),
        "LBCTL_LAB_PREFIX": "le" + secrets.token_hex(2),
    }
    try:
        yield env
    finally:
        lab(env, "down", timeout=120)  # every scenario ends with the lab torn down


def hello(prefix: str, address: str) -> bool:
    """Whether the demo answers on ``address`` from the client."""
    return "hello" in curl(prefix, f"http://{address}/").stdout


def curl(prefix: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", f"{prefix}-client", "curl", "-sS", "--max-time", "2", url],
        capture_output=True,
        text=True,
        check=False,
    )


def test_lab_up_serves_the_demo_on_its_external_ip_and_down_removes_everything(
    lab_env: dict[str, str],
) -> None:
    up = lab(lab_env, "up", "--processes")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "EXTERNAL-IP" in up.stdout
    state = json.loads((Path(lab_env["LBCTL_LAB_DIR"]) / "state.json").read_text())
    prefix = state["prefix"]
    svc = json.loads(
        lab(lab_env, "kubectl", "get", "svc", "-n", "demo", "demo", "-o", "json").stdout
    )
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    got = curl(prefix, f"http://{ip}/")
    assert "hello from the lbctl lab demo" in got.stdout, got.stderr
    via_exec = lab(lab_env, "exec", "client", "curl", "-sS", "--max-time", "2", f"http://{ip}/")
    assert "hello from the lbctl lab demo" in via_exec.stdout, via_exec.stderr
    assert "DOWN" not in lab(lab_env, "status").stdout
    version = json.loads(lab(lab_env, "kubectl", "version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == assets.kube_version(lab_env), version
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]
    # All of that happened with RBAC enforced: controller and speakers use their own tokens.
    lab_dir = Path(lab_env["LBCTL_LAB_DIR"])
    assert "name: lbctl-controller" in (lab_dir / "controller.kubeconfig").read_text()
    assert "name: lbctl-speaker" in (lab_dir / "speaker.kubeconfig").read_text()
    who = lab(
        lab_env,
        "kubectl",
        "auth",
        "can-i",
        "get",
        "secrets",
        "-A",
        "--as=system:serviceaccount:lbctl-system:lbctl-controller",
    )
    assert who.stdout.strip() == "no"

    again = lab(lab_env, "up", "--processes")  # idempotent
    assert again.returncode == 0 and "already up" in again.stdout
    assert lab(lab_env, "status").returncode == 0

    pids = [p["pid"] for p in state["processes"]]
    down = lab(lab_env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    wait_for("the lab's processes gone", lambda: not [p for p in pids if procs.running(p)], 5)
    assert [n for n in netns.listnetns() if n.startswith(prefix)] == []
    with IPRoute() as ipr:
        assert [
            link.get("ifname")
            for link in ipr.link("dump")
            if str(link.get("ifname")).startswith(prefix)
        ] == []
    assert not Path(lab_env["LBCTL_LAB_DIR"]).exists()


def test_without_root_the_lab_says_so(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    env = {**os.environ, "LBCTL_LAB_DIR": str(tmp_path / "lab")}
    got = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "lbctl", "lab", "up"],
        env=env, cwd="/", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert got.returncode == 1 and "lbctl lab needs root" in got.stderr, got.stderr
    assert not (tmp_path / "lab").exists()  # and nothing was made


@dataclass
class UpLab:
    """A lab that ``lbctl lab up`` brought up, and ways to poke at it."""

    env: dict[str, str]
    lab: lab_mod.Lab
    core: client.CoreV1Api
    prefix: str
    kubeconfig: str

    def lbctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lbctl", *args, f"--kubeconfig={self.kubeconfig}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def service(
        self, name: str, port: int = 80, annotations: dict[str, str] | None = None, **spec: Any
    ) -> str:
        self.core.create_namespaced_service(
            "demo",
            {
                "metadata": {"name": name, "annotations": annotations or {}},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app": "demo"},
                    "ports": [{"port": port, "targetPort": 8080, "protocol": "TCP"}],
                    **spec,
                },
            },
        )
        return lab_mod.wait_external_ip(self.core, "demo", name, timeout=30)

    def url(self, ip: str, port: int = 80) -> str:
        host = f"[{ip}]" if ":" in ip else ip
        return f"http://{host}:{port}/"

    def wait_http(self, url: str, timeout: float = 30) -> str:
        return wait_hello(url, functools.partial(curl, self.prefix, url), timeout, 0.3)

    def announcer(self, ip: str) -> str:
        rows = json.loads(self.lbctl("status", "-o", "json").stdout)["services"]
        return next(
            row["announced_by"][row["addresses"].index(ip)]
            for row in rows
            if ip in row["addresses"]
        )

    def neighbour_mac(self, ip: str) -> str:
        out = self.lab.lan().run("client", ["ip", "neigh", "show", "to", ip]).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else ""

    def check(self) -> list[tuple[str, str]]:
        return check_findings(self.kubeconfig, "lbctl-system")

    def arp_macs(self, ip: str, count: int = 3) -> set[str]:
        return failover.arp_macs(self.lab.lan(), ip, count)


@pytest.fixture
def up(lab_env: dict[str, str]) -> Iterator[UpLab]:
    done = lab(lab_env, "up", "--processes")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    the_lab = lab_mod.Lab(Path(lab_env["LBCTL_LAB_DIR"]), say=lambda _: None)
    state = the_lab.state()
    assert state is not None
    api = config.new_client_from_config(config_file=state.kubeconfig)
    try:
        yield UpLab(lab_env, the_lab, client.CoreV1Api(api), state.prefix, state.kubeconfig)
    finally:
        api.close()  # lab_env's teardown takes the lab down, even on failure


def test_cluster_local_ipv4_ipv6_and_no_node_ports_reach_the_backend_through_kube_proxy(
    up: UpLab,
) -> None:
    ips = {
        "demo": lab_mod.wait_external_ip(up.core, "demo", "demo", timeout=10),
        "cluster6": up.service("cluster6", ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack"),
        "local4": up.service("local4", externalTrafficPolicy="Local"),
        "local6": up.service(
            "local6", externalTrafficPolicy="Local", ipFamilies=["IPv6"],
            ipFamilyPolicy="SingleStack",
        ),
        # No NodePorts: kube-proxy still forwards the LoadBalancer address itself.
        "noports": up.service("noports", allocateLoadBalancerNodePorts=False),
    }  # fmt: skip
    assert ipaddress.ip_address(ips["cluster6"]).version == 6
    for name, ip in ips.items():
        body = up.wait_http(up.url(ip))
        node = up.announcer(ip)
        # The client sent it to the announcing node's MAC; that node has no such address, so
        # only kube-proxy's rules there could deliver it.
        assert up.neighbour_mac(ip) == up.lab.lan().host(node).mac, name
        if name.startswith("local"):
            # Local: announced only by a node with an endpoint, and served by that endpoint.
            assert node in ("node1", "node2") and f"on {node}" in body, (name, node, body)
    assert up.check() == []


def test_killing_the_announcing_node_under_traffic_moves_the_address_and_traffic_resumes(
    up: UpLab, record_property: Any
) -> None:
    # An address that node3 (which has no demo endpoint) announces, so the outage measured is
    # the failover's alone, not kube-proxy still sending some requests to a dead endpoint.
    ip = failover.address_owned_by(up.lab, "node3")
    up.service("web", annotations={"lbctl.io/loadBalancerIPs": ip})
    up.wait_http(up.url(ip))
    assert up.announcer(ip) == "node3"

    client_traffic = subprocess.Popen(
        procs.netns_argv(
            f"{up.prefix}-client",
            [sys.executable, "-m", "lbctl.lab.traffic", up.url(ip), "--period", "0.05",
             "--duration", "14"],
        ),
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(3)
        fault_at = time.monotonic()
        up.lab.stop_speaker("node3", signal.SIGKILL)
        up.lab.set_link("node3", up=False)
        out, _ = client_traffic.communicate(timeout=60)
    finally:
        if client_traffic.poll() is None:
            client_traffic.kill()
    samples = traffic.parse(out.splitlines())
    assert len(samples) > 150  # a request every 50 ms for 14 s, less the outage's timeouts
    assert all(s.ok for s in samples if s.t < fault_at)
    gaps = [o for o in traffic.outages(samples) if o.end is None or o.end > fault_at]
    assert len(gaps) == 1 and gaps[0].seconds is not None, gaps  # one outage, then back
    outage = gaps[0].seconds
    record_property("failover_outage_s", round(outage, 3))
    print(f"outage under traffic after killing node3: {outage:.2f} s")
    # The LAN advertisements' 350 ms + the heir's reaction + the client's next attempt (its
    # 0.5 s timeout), far inside the 40 s Lease.
    assert outage < 2
    heir = up.announcer(ip)
    assert heir in ("node1", "node2")
    assert up.arp_macs(ip) == {up.lab.lan().host(heir).mac}
    assert up.check() == [("SpeakerDown", "node3")]


def test_a_deleted_services_address_stops_answering_and_goes_to_the_next_service(
    up: UpLab,
) -> None:
    ip = lab_mod.wait_external_ip(up.core, "demo", "demo", timeout=10)
    assert len(up.arp_macs(ip)) == 1
    up.core.delete_namespaced_service("demo", "demo", _preload_content=False)
    deadline = time.monotonic() + 20
    while up.arp_macs(ip, count=2):
        assert time.monotonic() < deadline, f"{ip} still answers ARP after its Service went"
    assert curl(up.prefix, up.url(ip)).returncode != 0
    assert up.check() == []

    assert up.service("next", port=81) == ip  # the first free address again
    assert "hello" in up.wait_http(up.url(ip, 81))
    assert len(up.arp_macs(ip)) == 1
    assert up.check() == []


@pytest.mark.slow
def test_repeated_failovers_under_traffic_leave_exactly_one_mac_answering_each_time(
    up: UpLab, record_property: Any, full_counts: bool
) -> None:
    failover.tune(up.lab)  # lease 1 s: rounds in seconds, as docs/operations.md tunes it
    ip = failover.address_owned_by(up.lab, "node3")
    up.service("web", annotations={"lbctl.io/loadBalancerIPs": ip})
    up.wait_http(up.url(ip))
    rounds = 20 if full_counts else 4
    result = failover.run(up.lab, ip, "node3", rounds, url=up.url(ip))
    assert len(result.rounds) == rounds
    for r in result.rounds:  # after the kill and after the return: one MAC, the right one
        assert r.heir_macs == {up.lab.lan().host(r.heir).mac}
        assert r.back_macs == {up.lab.lan().host("node3").mac}
    assert all(o.end is not None for o in result.outages)  # traffic always came back
    kills = result.after_kills()
    assert len(kills) == rounds  # each kill is one outage, then traffic flows on the heir
    seconds = [round(o.seconds or 0, 3) for o in kills]
    record_property("failover_outages_s", seconds)
    record_property("return_outages_s", [round(o.seconds or 0, 3) for o in result.after_returns()])
    print(f"{rounds} failovers: client outages {seconds} s")
    assert up.check() == []


def test_installed_with_helm_the_demo_answers_and_an_upgrade_and_uninstall_keep_their_word(
    lab_env: dict[str, str], helm: Path
) -> None:
    env = {**lab_env, "LBCTL_LAB_INSTALL": "helm"}
    up = lab(env, "up", "--processes")  # the chart beside the lab's processes
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "helm install lbctl deploy/helm/lbctl" in up.stdout
    the_lab = lab_mod.Lab(Path(env["LBCTL_LAB_DIR"]), say=lambda _: None)
    state = the_lab.state()
    assert state is not None and state.install == "helm"
    kubeconfig = Path(state.kubeconfig)

    def helm_run(*args: str) -> str:
        got = subprocess.run([str(helm), *args, "-n", "lbctl-system",
                              f"--kubeconfig={kubeconfig}"],
                             capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert got.returncode == 0, got.stderr
        return got.stdout

    api = config.new_client_from_config(config_file=state.kubeconfig)
    try:
        core = client.CoreV1Api(api)
        ip = lab_mod.wait_external_ip(core, "demo", "demo", timeout=10)
        assert "hello from the lbctl lab demo" in curl(state.prefix, f"http://{ip}/").stdout
        assert "deployed" in helm_run("list")

        # Upgrade with a changed pool: a second range. The demo keeps its address and answers;
        # a Service asking for an address of the new range gets it, so the new pool is in force.
        pool = yaml.safe_load(
            core.read_namespaced_config_map("lbctl-config", "lbctl-system").data["config.yaml"]
        )
        gw = ipaddress.ip_network(state.subnet4).network_address
        pool["pools"].append({"name": "more", "addresses": [f"{gw + 180}-{gw + 189}"]})
        # --reuse-values keeps the install's own settings (the lab's admissionPolicies=false).
        assert "REVISION: 2" in helm_run("upgrade", "lbctl", str(lab_mod.CHART), "--reuse-values",
                                         "--set-json", f"config={json.dumps(pool)}")  # fmt: skip
        core.create_namespaced_service("demo", {
            "metadata": {"name": "more", "annotations": {"lbctl.io/address-pool": "more"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "demo"},
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        })  # fmt: skip
        more = lab_mod.wait_external_ip(core, "demo", "more", timeout=30)
        assert more == str(gw + 180)
        assert lab_mod.wait_external_ip(core, "demo", "demo", timeout=5) == ip
        for address in (more, ip):  # announced and forwarded a moment after the status
            wait_for(
                f"{address} to answer", functools.partial(hello, state.prefix, address), 30, 0.3
            )

        # Uninstall as the README says: the Services go while the controller runs, then the
        # components stop (in a cluster their Pods go with the uninstall; a speaker's Lease
        # then goes with its Pod: tests/integration/test_speaker_lease_owner.py), then helm.
        for name in ("demo", "more"):
            core.delete_namespaced_service(name, "demo", _preload_content=False)
        wait_for(
            "the Services gone (not kept by a finalizer)",
            lambda: not core.list_namespaced_service("demo").items,
            30,
            0.2,
        )
        for name in ("controller", *(f"speaker@{n}" for n in lab_mod.NODES)):
            the_lab.stop(name)
        assert "uninstalled" in helm_run("uninstall", "lbctl")
        coord = client.CoordinationV1Api(api)
        rbac = client.RbacAuthorizationV1Api(api)
        left = {
            "leases": [x.metadata.name for x in coord.list_namespaced_lease("lbctl-system").items],
            "configmaps": [x.metadata.name
                           for x in core.list_namespaced_config_map("lbctl-system").items],
            "serviceaccounts": [x.metadata.name for x in
                                core.list_namespaced_service_account("lbctl-system").items
                                if x.metadata.name != "default"],  # the namespace's own
            "roles": [x.metadata.name for x in rbac.list_namespaced_role("lbctl-system").items],
            "clusterroles": [x.metadata.name for x in rbac.list_cluster_role().items
                             if x.metadata.name.startswith("lbctl")],
        }  # fmt: skip
        assert left == {k: [] for k in left}
    finally:
        api.close()
