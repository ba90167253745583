"""The release on real nodes: ``lbctl lab up`` as a user with kind would run it, then faults.

One lab for the module (bringing it up takes minutes); the tests run in file order, the
destructive ones last, and the last one takes the lab down and checks that nothing is left.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import missing
from kube_helpers import check_findings, wait_hello
from kubernetes import client, config
from pyroute2 import IPRoute, netns

from lbctl.lab import arpwatch, cluster, failover, images, lan, nodes, procs, traffic
from lbctl.lab import lab as lab_mod

NS = "lbctl-system"


def lab_cli(
    env: dict[str, str], *args: str, timeout: float = 1500
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbctl", "lab", *args],
        env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class RealLab:
    env: dict[str, str]
    lab: lab_mod.Lab
    state: lab_mod.State
    core: client.CoreV1Api
    apps: client.AppsV1Api
    coord: client.CoordinationV1Api
    up_output: str

    @property
    def prefix(self) -> str:
        return self.state.prefix

    @property
    def kubeconfig(self) -> str:
        return self.state.kubeconfig

    def kubectl(self, *args: str, check: bool = True) -> str:
        got = lab_cli(self.env, "kubectl", *args, timeout=120)
        if check:
            assert got.returncode == 0, got.stderr
        return got.stdout

    def curl(self, url: str) -> subprocess.CompletedProcess[str]:
        return self.lab.lan().run("client", ["curl", "-sS", "--max-time", "2", url], check=False)

    def wait_http(self, url: str, timeout: float = 60) -> str:
        return wait_hello(url, functools.partial(self.curl, url), timeout, 0.5)

    def service(self, name: str, **spec: Any) -> str:
        self.core.create_namespaced_service(cluster.DEMO_NS, cluster.demo_service(name, **spec))
        return lab_mod.wait_external_ip(self.core, cluster.DEMO_NS, name, timeout=60)

    def announcer(self, ip: str) -> str:
        argv = [sys.executable, "-m", "lbctl", "status", "-o", "json"]
        got = subprocess.run(
            [*argv, f"--kubeconfig={self.kubeconfig}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        rows = json.loads(got.stdout)["services"]
        return str(
            next(r["announced_by"][r["addresses"].index(ip)] for r in rows if ip in r["addresses"])
        )

    def mac(self, node: str) -> str:
        return self.lab.lan().host(node).mac

    def neighbour_mac(self, ip: str) -> str:
        out = self.lab.lan().run("client", ["ip", "neigh", "show", "to", ip]).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else ""

    def pods(self, selector: str, ns: str = NS) -> list[Any]:
        return list(self.core.list_namespaced_pod(ns, label_selector=selector).items)

    def speaker_pod(self, node: str) -> Any:
        [pod] = [
            p for p in self.pods("app.kubernetes.io/component=speaker")
            if p.spec.node_name == node and p.metadata.deletion_timestamp is None
        ]  # fmt: skip
        return pod

    def exec_in(self, pod: str, *argv: str, check: bool = True) -> str:
        return self.kubectl("exec", "-n", NS, pod, "--", *argv, check=check)

    def check(self) -> list[tuple[str, str]]:
        return check_findings(self.kubeconfig, NS)

    def watch(self, argv: list[str]) -> procs.Process:
        """A background program in the client's namespace, its output into a file."""
        return procs.Process(
            argv[0],
            [sys.executable, "-m", *argv],
            log=Path(tempfile.mkdtemp(prefix="lbctl-watch-")) / "out.log",
            netns=f"{self.prefix}-client",
        ).start()


def finish(proc: procs.Process) -> list[str]:
    """Stop a watcher and return what it wrote."""
    proc.stop()
    lines = proc.log.read_text().splitlines()
    shutil.rmtree(proc.log.parent, ignore_errors=True)
    return lines


@pytest.fixture(scope="module")
def real() -> Iterator[RealLab]:
    if lan.missing_privileges():
        missing(str(lan.missing_privileges()))
    for tool, package in (("containerd", "containerd"), ("runc", "runc"), ("buildah", "buildah"),
                          ("mmdebstrap", "mmdebstrap")):  # fmt: skip
        if not Path(f"/usr/bin/{tool}").exists() and not Path(f"/usr/sbin/{tool}").exists():
            missing(f"{tool} is not installed (apt-get install {package})")
    # Short: unix sockets are made below it (the pytest tmp_path is too long for them).
    directory = Path(tempfile.mkdtemp(prefix="lbctl-e2e-", dir="/tmp"))
    env = {
        **os.environ,
        "LBCTL_LAB_DIR": str(directory / "lab"),
        "LBCTL_LAB_PREFIX": "rn" + secrets.token_hex(2),
    }
    if os.environ.get("LBCTL_E2E_LAB_DIR"):  # while developing: a lab that is already up
        env["LBCTL_LAB_DIR"] = os.environ["LBCTL_E2E_LAB_DIR"]
    started = time.monotonic()
    up = lab_cli(env, "up")
    the_lab = lab_mod.Lab(Path(env["LBCTL_LAB_DIR"]), say=lambda _: None)
    try:
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        print(f"real-node lab up in {time.monotonic() - started:.0f} s")
        state = the_lab.state()
        assert state is not None
        api = config.new_client_from_config(config_file=state.kubeconfig)
        yield RealLab(
            env, the_lab, state, client.CoreV1Api(api), client.AppsV1Api(api),
            client.CoordinationV1Api(api), up.stdout,
        )  # fmt: skip
        api.close()
    finally:
        if not os.environ.get("LBCTL_E2E_LAB_DIR"):
            lab_cli(env, "down", timeout=300)  # the last test checks a clean down; a net
        os.rmdir(directory) if directory.exists() and not any(directory.iterdir()) else None


def test_lab_up_runs_lbctls_own_pods_and_the_demo_answers_naming_a_pod(real: RealLab) -> None:
    assert "EXTERNAL-IP" in real.up_output
    pods = json.loads(real.kubectl("get", "pods", "-A", "-o", "json"))["items"]
    mine = [p for p in pods if p["metadata"]["namespace"] == NS]
    controllers = [p for p in mine if "controller" in p["metadata"]["name"]]
    speakers = [p for p in mine if "speaker" in p["metadata"]["name"]]
    assert len(controllers) == 2 and len(speakers) == 3
    assert {p["spec"]["nodeName"] for p in speakers} == {"node1", "node2", "node3"}
    for pod in mine:
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["metadata"]["name"]
        [image] = {c["image"] for c in pod["spec"]["containers"]}
        assert image == "lbctl:0.1.0"  # deploy/ as it is: the overlay changes the pool only
    demo = [p for p in pods if p["metadata"]["namespace"] == "demo"]
    assert len(demo) == 3 and {p["spec"]["nodeName"] for p in demo} == {"node1", "node2", "node3"}
    assert all(p["status"]["podIP"].startswith("10.244.") for p in demo)  # real pod networks
    ip = lab_mod.wait_external_ip(real.core, "demo", "demo", timeout=10)
    names = {p["metadata"]["name"] for p in demo}
    seen = {real.wait_http(f"http://{ip}/").split("pod ")[1].split()[0] for _ in range(12)}
    assert seen <= names and len(seen) >= 2, seen  # kube-proxy spreads over real Pods
    status = lab_cli(real.env, "status", timeout=120)
    assert status.returncode == 0 and "DOWN" not in status.stdout, status.stdout
    assert "Node node3 Ready" in status.stdout
    assert real.check() == []


def test_cluster_and_local_ipv4_and_ipv6_reach_the_demo_on_the_external_ip(real: RealLab) -> None:
    ips = {
        "demo": lab_mod.wait_external_ip(real.core, "demo", "demo", timeout=10),
        "cluster6": real.service("cluster6", ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack"),
        "local4": real.service("local4", externalTrafficPolicy="Local"),
        "local6": real.service(
            "local6", externalTrafficPolicy="Local", ipFamilies=["IPv6"],
            ipFamilyPolicy="SingleStack",
        ),
    }  # fmt: skip
    assert ipaddress.ip_address(ips["cluster6"]).version == 6
    for name, ip in ips.items():
        host = f"[{ip}]" if ":" in ip else ip
        body = real.wait_http(f"http://{host}/")
        node = real.announcer(ip)
        assert real.neighbour_mac(ip) == real.mac(node), name
        if name.startswith("local"):  # Local: the announcing node's own Pod answers
            assert body.rstrip().endswith(f"on {node}"), (name, node, body)
    assert real.check() == []


def test_the_speaker_has_only_net_raw_the_controller_is_not_root_both_read_only(
    real: RealLab,
) -> None:
    speaker = real.speaker_pod("node1").metadata.name
    status = real.exec_in(speaker, "cat", "/proc/1/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == 1 << 13  # CAP_NET_RAW and nothing else
    assert fields["Uid"].split()[0] == "0"
    controller = real.pods("app.kubernetes.io/component=controller")[0].metadata.name
    status = real.exec_in(controller, "cat", "/proc/1/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == 0
    assert fields["Uid"].split()[0] == "65532"
    for pod in (speaker, controller):
        touch = lab_cli(real.env, "kubectl", "exec", "-n", NS, pod, "--", "touch", "/x", timeout=60)
        assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch.stderr
        token = real.exec_in(pod, "ls", "/var/run/secrets/kubernetes.io/serviceaccount")
        assert "token" in token.split()  # the mounted ServiceAccount token the Pod runs with


def test_a_deleted_speaker_pod_comes_back_and_one_mac_answers_at_every_point(
    real: RealLab,
) -> None:
    ip = lab_mod.wait_external_ip(real.core, "demo", "demo", timeout=10)
    node = real.announcer(ip)
    old = real.speaker_pod(node)
    watch = real.watch(["lbctl.lab.arpwatch", ip, "--period", "0.2", "--duration", "600"])
    try:
        time.sleep(2)
        real.core.delete_namespaced_pod(old.metadata.name, NS)
        procs.wait_until(
            "the DaemonSet's new speaker Ready on the node",
            lambda: _ready_speaker_other_than(real, node, old.metadata.name),
            timeout=120,
            interval=1,
        )
        procs.wait_until(f"{ip} back on {node}", lambda: real.announcer(ip) == node,
                         timeout=60, interval=1)  # fmt: skip
        # The new speaker announces only after its start-up wait (a renew period and more).
        procs.wait_until(
            f"{node} answers ARP for {ip} again",
            lambda: failover.arp_macs(real.lab.lan(), ip) == {real.mac(node)},
            timeout=60,
            interval=0.5,
        )
        time.sleep(3)
    finally:
        answers = arpwatch.parse(finish(watch))
    assert answers and arpwatch.conflicts(answers) == []
    runs = [mac for mac, _, _ in arpwatch.answered_by(answers)]
    assert runs[0] == real.mac(node) and runs[-1] == real.mac(node), runs
    assert len(runs) == 3 and runs[1] != real.mac(node), runs  # away to one node, and back
    assert real.check() == []


def _ready_speaker_other_than(real: RealLab, node: str, old: str) -> bool:
    for pod in real.pods("app.kubernetes.io/component=speaker"):
        if pod.spec.node_name == node and pod.metadata.name != old:
            conds = {c.type: c.status for c in pod.status.conditions or []}
            return conds.get("Ready") == "True"
    return False


def test_deleting_the_leader_controller_pod_hands_over_and_no_service_moves(
    real: RealLab, record_property: Any
) -> None:
    before = _addresses(real)
    leader = real.coord.read_namespaced_lease("lbctl-controller", NS).spec.holder_identity
    pods = {p.metadata.name for p in real.pods("app.kubernetes.io/component=controller")}
    assert leader in pods, (leader, pods)
    standby = (pods - {leader}).pop()
    deleted_at = time.monotonic()
    real.core.delete_namespaced_pod(leader, NS)
    holders: list[str] = []

    def another_leads() -> bool:
        holder = real.coord.read_namespaced_lease("lbctl-controller", NS).spec.holder_identity
        holders.append(holder or "")
        return bool(holder) and holder != leader

    try:
        procs.wait_until("another replica leads", another_leads, timeout=60, interval=0.25)
    except procs.ProcessError:
        pods_now = real.kubectl("get", "pods", "-n", NS, "-o", "wide", check=False)
        raise AssertionError(
            f"leader {leader}: holders seen {sorted(set(holders))}\n{pods_now}"
        ) from None
    took = time.monotonic() - deleted_at
    # The leader gives its Lease back on SIGTERM; every candidate races for it, the warm standby
    # and the Deployment's replacement Pod alike (seen here: either may win).
    record_property("controller_handover_s", round(took, 2))
    record_property("controller_heir_was_standby", holders[-1] == standby)
    heir = "the standby" if holders[-1] == standby else "the new replica"
    print(f"controller handover in {took:.1f} s to {heir}")
    ip = real.service("after-handover-" + secrets.token_hex(2))  # the new leader allocates
    assert ip not in before.values()
    after = _addresses(real)
    assert {k: v for k, v in after.items() if k in before} == before
    procs.wait_until("a new controller replica Ready", lambda: _controllers_ready(real) == 2,
                     timeout=120, interval=1)  # fmt: skip
    assert real.check() == []


def _addresses(real: RealLab) -> dict[str, str]:
    return {
        s.metadata.name: ",".join(i.ip for i in s.status.load_balancer.ingress or [])
        for s in real.core.list_namespaced_service("demo").items
    }


def _controllers_ready(real: RealLab) -> int:
    return int(
        real.apps.read_namespaced_deployment("lbctl-controller", NS).status.ready_replicas or 0
    )


def test_a_rolling_update_of_the_speakers_costs_at_most_one_short_outage_never_two_macs(
    real: RealLab, record_property: Any
) -> None:
    ip = lab_mod.wait_external_ip(real.core, "demo", "demo", timeout=10)
    for spec in real.state.node_specs():  # the "new version": the same image, a new tag
        images.tag_image(spec.socket, "lbctl:0.1.0", "lbctl:0.1.0-r2", log=spec.path / "import.log")
    arp = real.watch(["lbctl.lab.arpwatch", ip, "--period", "0.2", "--duration", "900"])
    http = real.watch(
        ["lbctl.lab.traffic", f"http://{ip}/", "--period", "0.05", "--duration", "900"]
    )
    try:
        time.sleep(3)
        real.kubectl("set", "image", "-n", NS, "daemonset/lbctl-speaker", "speaker=lbctl:0.1.0-r2")
        real.kubectl("rollout", "status", "-n", NS, "daemonset/lbctl-speaker", "--timeout=600s")
        time.sleep(5)
    finally:
        answers = arpwatch.parse(finish(arp))
        samples = traffic.parse(finish(http))
    assert arpwatch.conflicts(answers) == []
    silence = arpwatch.longest_silence(answers)
    record_property("rolling_update_arp_silence_s", round(silence, 2))
    print(f"rolling update: longest time no node answered ARP {silence:.2f} s")
    gaps = traffic.outages(samples)
    seconds = [round(g.seconds, 3) if g.seconds is not None else None for g in gaps]
    record_property("rolling_update_outages_s", seconds)
    print(f"rolling update of the speakers: outages {seconds} s, {len(samples)} requests")
    assert all(g.end is not None for g in gaps)
    assert len(gaps) <= 1 and all((g.seconds or 0) <= 1.0 for g in gaps), seconds
    images_now = {
        p.spec.containers[0].image for p in real.pods("app.kubernetes.io/component=speaker")
    }
    assert images_now == {"lbctl:0.1.0-r2"}
    assert real.check() == []


def test_a_node_that_dies_loses_its_address_to_another_and_traffic_resumes(
    real: RealLab, record_property: Any
) -> None:
    ip = lab_mod.wait_external_ip(real.core, "demo", "demo", timeout=10)
    victim = real.announcer(ip)
    spec = next(s for s in real.state.node_specs() if s.name == victim)
    http = real.watch(
        ["lbctl.lab.traffic", f"http://{ip}/", "--period", "0.1", "--duration", "900"]
    )
    try:
        time.sleep(3)
        died_at = time.monotonic()
        nodes.kill(spec)  # kubelet, containerd, kube-proxy, every container: a power cut
        real.lab.set_link(victim, up=False)
        procs.wait_until(f"{ip} announced by another node", lambda: real.announcer(ip) != victim,
                         timeout=60, interval=1)  # fmt: skip
        heir = real.announcer(ip)
        # Until the node controller marks the node NotReady (grace 16 s), kube-proxy still
        # sends some connections to the dead node's Pod; then only to live ones.
        procs.wait_until(f"{victim} NotReady", lambda: not _node_ready(real, victim),
                         timeout=90, interval=1)  # fmt: skip
        time.sleep(8)
    finally:
        samples = traffic.parse(finish(http))
    after = [s for s in samples if s.t > died_at]
    tail = after[-40:]  # the last 4 s
    assert tail and all(s.ok for s in tail), tail[-5:]
    assert all(f"on {victim}" not in s.body for s in tail)
    gaps = [g for g in traffic.outages(samples) if g.end is None or g.end > died_at]
    assert all(g.end is not None for g in gaps)
    worst = max((g.seconds or 0.0 for g in gaps), default=0.0)
    record_property("node_death_outages_s", [round(g.seconds or 0, 2) for g in gaps])
    print(f"{victim} died, heir {heir}: outages {[round(g.seconds or 0, 2) for g in gaps]} s")
    # The speaker Lease (4 s) expires, the heir answers; requests that kube-proxy still sends
    # to the dead node's Pod fail until the node is NotReady (16 s grace): each a short gap.
    assert worst < 4 + 3


def _node_ready(real: RealLab, name: str) -> bool:
    node = real.core.read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def test_lab_down_leaves_no_process_namespace_link_mount_cgroup_or_file(real: RealLab) -> None:
    specs = real.state.node_specs()
    pids = [p.pid for p in real.state.processes]
    down = lab_cli(real.env, "down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    time.sleep(0.5)
    assert [p for p in pids if procs.running(p)] == []
    assert [n for n in netns.listnetns() if n.startswith(real.prefix)] == []
    with IPRoute() as ipr:
        links = [str(link.get("ifname")) for link in ipr.link("dump")]
    assert [name for name in links if name.startswith(real.prefix)] == []
    mounts = Path("/proc/self/mounts").read_text()
    assert str(real.lab.dir) not in mounts
    for spec in specs:
        assert nodes.leftovers(spec) == []
    assert not real.lab.dir.exists()
    assert not (nodes.DEVICE_PLUGINS / "kubelet.sock").exists()  # the kubelets' fixed path
    containers = Path("/var/log/containers")
    if containers.is_dir():
        assert [p for p in containers.iterdir() if str(real.lab.dir) in os.readlink(p)] == []
