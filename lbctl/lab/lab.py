"""``lbctl lab``: a cluster on one machine, kept between commands (I/O, root).

Both kinds build a LAN of three node namespaces and a client on a free documentation range.

- ``up`` (real nodes, ``cluster``): a control plane with every default controller and a
  scheduler; in each node a containerd, a kubelet and kube-proxy; the release image built from
  the Dockerfile and ``deploy/`` applied with kustomize, so lbctl's controller and speakers run
  as real Pods; a demo Deployment behind a ``type: LoadBalancer`` Service.
- ``up --processes`` (the fast mode for network tests): etcd, kube-apiserver and
  kube-controller-manager; kube-proxy and an lbctl speaker as processes in every node, the
  lbctl controller beside the API server, as the ServiceAccounts of lbctl's objects (from
  deploy/ by default, with ``LBCTL_LAB_INSTALL=helm`` by ``helm install`` of the chart); demo
  Pods whose status is set as a kubelet would, serving HTTP in their node.

Everything it starts or makes is recorded in a state file, so ``down`` removes exactly that:
processes by PID, nodes by cgroup and mount path, namespaces and links by name.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import yaml

from lbctl.jsonvalue import JSONObject
from lbctl.lab import assets, cluster, controlplane, lan, nodes, plan, procs, waits

if TYPE_CHECKING:  # the client's types, for reading; imported at run time where used
    from kubernetes.client import CoreV1Api


NODES = ("node1", "node2", "node3")
DEMO_NS = "demo"
LBCTL_NS = "lbctl-system"
SPEAKER_METRICS_PORT = 7473  # each node has its own address: the default port is free there
Say = Callable[[str], None]


class _LanChoice(TypedDict, total=False):
    """What ``Lab.make_lan`` passes on to ``lan.create`` besides the lab's own settings."""

    subnet4: str | None
    subnet6: str | None
    on_plan: Callable[[plan.LanPlan], None] | None


class LabError(RuntimeError):
    """The lab could not be brought up or down; the message says which step."""


def lab_dir() -> Path:
    if os.environ.get("LBCTL_LAB_DIR"):
        return Path(os.environ["LBCTL_LAB_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lbctl" / "lab"


def lab_prefix() -> str:
    return os.environ.get("LBCTL_LAB_PREFIX", "lblab")


REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "lbctl"
INSTALLS = ("kubectl", "helm")


def lab_install() -> str:
    """How lbctl's objects get into the lab: ``kubectl`` (deploy/rbac.yaml and a ConfigMap,
    the default) or ``helm`` (``helm install`` of deploy/helm/lbctl), ``LBCTL_LAB_INSTALL``."""
    value = os.environ.get("LBCTL_LAB_INSTALL") or "kubectl"
    if value not in INSTALLS:
        raise LabError(f"LBCTL_LAB_INSTALL={value!r}: expected one of {', '.join(INSTALLS)}")
    return value


@dataclass
class ProcRecord:
    name: str
    pid: int
    argv0: str  # checked against /proc before signalling: never kill a recycled PID


@dataclass
class State:
    prefix: str
    subnet4: str
    subnet6: str
    hosts: list[str]
    apiserver_port: int = 0
    kubeconfig: str = ""
    processes: list[ProcRecord] = field(default_factory=list)
    # where each component serves /metrics, as host:port from the root namespace:
    # "controller" on loopback, each node's speaker on its LAN address
    metrics: dict[str, str] = field(default_factory=dict)
    install: str = "kubectl"  # how lbctl's objects were installed: kubectl or helm
    kind: str = "processes"  # or "nodes": real kubelets
    real_nodes: list[dict[str, Any]] = field(default_factory=list)  # NodeSpecs, for down

    def node_specs(self) -> list[nodes.NodeSpec]:
        return [nodes.NodeSpec(**n) for n in self.real_nodes]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            data = json.loads(path.read_text())
            data["processes"] = [ProcRecord(**p) for p in data.get("processes", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def lan_plan(self) -> plan.LanPlan:
        return plan.plan_lan(
            self.prefix,
            self.hosts,
            plan.pick_free([self.subnet4], []),
            plan.pick_free([self.subnet6], []),
        )


def _alive(rec: ProcRecord) -> bool:
    if not procs.running(rec.pid):
        return False
    try:
        cmdline = Path(f"/proc/{rec.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(rec.argv0.encode() in part for part in cmdline)


def _record(state: State, proc: procs.Process, path: Path, argv0: str = "") -> None:
    assert proc.pid is not None
    if not argv0:
        argv0 = proc.argv[4] if proc.argv[:3] == ["ip", "netns", "exec"] else proc.argv[0]
    state.processes.append(ProcRecord(proc.name, proc.pid, argv0))
    state.save(path)


def pick_ranges(say: Say) -> tuple[plan.IPNetwork, plan.IPNetwork]:
    """Free LAN ranges; while other LANs hold them all, wait (``LBCTL_LAN_WAIT`` s, 900)."""
    told: list[BaseException] = []

    def pick() -> tuple[plan.IPNetwork, plan.IPNetwork]:
        routes, needed = lan.root_routes(), lan.needed_addresses()
        return (
            plan.pick_free(plan.IPV4_CANDIDATES, routes, None, needed),
            plan.pick_free(plan.IPV6_CANDIDATES, routes, None, needed),
        )

    def waiting(exc: BaseException) -> None:
        if not told:
            say("every free LAN range is in use by another lab: waiting for one")
        told.append(exc)

    return waits.retrying(
        pick,
        passes=lambda exc: isinstance(exc, plan.RangesInUse),
        timeout=float(os.environ.get("LBCTL_LAN_WAIT", "900")),
        interval=2,
        waiting=waiting,
    )


class Lab:
    def __init__(self, directory: Path | None = None, say: Say = print) -> None:
        self.dir = directory or lab_dir()
        self.state_file = self.dir / "state.json"
        self.say = say

    def state(self) -> State | None:
        return State.load(self.state_file)

    # --- up ---

    def make_lan(self, state: State, **plan: Unpack[_LanChoice]) -> lan.Lan:
        """The lab's LAN, kept until ``lab down``; if ``LBCTL_LAN_KEEPER`` names a process
        (a test run) that dies first, the next LAN made on this machine runs that ``lab down``."""
        return lan.create(
            state.hosts,
            self.dir / "lan",
            prefix=state.prefix,
            persistent=True,
            down=[sys.executable, "-m", "lbctl", "lab", "down"],
            down_env={"LBCTL_LAB_DIR": str(self.dir)},
            **plan,
        )

    def up(self, *, processes: bool = False) -> int:
        """Bring a lab up: real nodes, or with ``processes`` the fast process-based one."""
        if os.geteuid() != 0:
            raise LabError(
                "lbctl lab needs root: it creates network namespaces and runs "
                "kube-proxy (try: sudo lbctl lab up)"
            )
        existing = self.state()
        if existing is not None:
            if self._healthy(existing):
                self.say("the lab is already up")
                self.show()
                return 0
            self.say("a previous lab is broken or half made: taking it down first")
            self.down()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            if processes:
                self._up()
            else:
                self._up_nodes()
        except BaseException:
            self.say("bringing the lab up failed: removing what was made")
            self.down(quiet=True)
            raise
        self.show()
        return 0

    def _up(self) -> None:
        say = self.say
        install = lab_install()
        say("Kubernetes and etcd binaries (built once from the Go module proxy, then cached)")
        wanted = (*assets.ALL, assets.HELM) if install == "helm" else assets.ALL
        binaries = assets.ensure(wanted, progress=lambda m: say(f"  {m}"))
        subnet4, subnet6 = pick_ranges(say)
        state = State(lab_prefix(), str(subnet4), str(subnet6), [*NODES, "client"], install=install)
        state.save(self.state_file)  # from here on, down knows what to remove

        say(f"LAN {subnet4} and {subnet6}: {', '.join(NODES)} and a client")
        the_lan = self.make_lan(state, subnet4=str(subnet4), subnet6=str(subnet6))
        for host in NODES:  # kube-proxy forwards to endpoints on other nodes
            the_lan.run(
                host, ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
            )
        say("etcd, kube-apiserver, kube-controller-manager")
        cp = controlplane.ControlPlane(
            workdir=self.dir / "cp",
            binaries=binaries,
            bind_address="0.0.0.0",
            extra_sans=plan.candidate_gateways(),
        )
        cp.start(controller_manager=True)
        for proc in cp.processes:
            _record(state, proc, self.state_file)
        state.apiserver_port, state.kubeconfig = cp.port, str(cp.kubeconfig)
        state.save(self.state_file)
        # kube-proxy's own credentials (the admin's: the lab has no kubelet to mint them)
        proxy_kubeconfig = cp.write_kubeconfig(
            self.dir / "node.kubeconfig", host=str(the_lan.plan.gateway4)
        )

        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        core = client.CoreV1Api(api)
        for ns in (LBCTL_NS, DEMO_NS):
            with contextlib.suppress(client.exceptions.ApiException):
                core.create_namespace({"metadata": {"name": ns}})
        pool: JSONObject = {
            "pools": [{"name": "lab", "addresses": cluster.pool_ranges(the_lan.plan)}]
        }
        if install == "helm":
            say("lbctl's objects from the Helm chart: helm install lbctl deploy/helm/lbctl")
            self._helm_install(binaries[assets.HELM], cp.kubeconfig, pool)
        else:
            self._kubectl_install(binaries["kubectl"], core, cp.kubeconfig, pool)
        controller_kubeconfig = cp.write_kubeconfig(
            self.dir / "controller.kubeconfig",
            token=service_account_token(core, LBCTL_NS, "lbctl-controller"),
            user="lbctl-controller",
        )
        cp.write_kubeconfig(
            self.dir / "speaker.kubeconfig",
            host=str(the_lan.plan.gateway4),
            token=service_account_token(core, LBCTL_NS, "lbctl-speaker"),
            user="lbctl-speaker",
        )

        say("nodes: kube-proxy and an lbctl speaker in each")
        for host in NODES:
            ip, ip6 = the_lan.host(host).ipv4, the_lan.host(host).ipv6
            core.create_node(
                {"metadata": {"name": host, "labels": {"kubernetes.io/hostname": host}}}
            )
            core.patch_node_status(
                host,
                {
                    "status": {
                        "addresses": [
                            {"type": "InternalIP", "address": str(ip)},
                            {"type": "InternalIP", "address": str(ip6)},
                            {"type": "Hostname", "address": host},
                        ],
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "LabNode",
                                "message": "a network namespace",
                            }
                        ],
                    }
                },
            )
            proxy = the_lan.start(
                host,
                "kube-proxy",
                [
                    str(binaries["kube-proxy"]),
                    f"--kubeconfig={proxy_kubeconfig}",
                    f"--hostname-override={host}",
                    f"--bind-address={ip}",
                    "--proxy-mode=iptables",
                    "--conntrack-max-per-core=0",
                    # dual-stack: iptables and ip6tables rules, for IPv4 and IPv6 Services
                    "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
                    "--metrics-bind-address=127.0.0.1:10249",
                    "--healthz-bind-address=127.0.0.1:10256",
                ],
            )
            _record(state, proxy, self.state_file)
            self.start_speaker(state, the_lan, host)
        say("the lbctl controller")
        port = procs.free_port()
        ctl = procs.Process(
            "controller",
            [
                sys.executable,
                "-m",
                "lbctl",
                "controller",
                f"--kubeconfig={controller_kubeconfig}",
                "--identity=lab-controller",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={port}",
            ],
            log=self.dir / "controller.log",
        ).start()
        state.metrics["controller"] = f"127.0.0.1:{port}"
        _record(state, ctl, self.state_file)

        say("the demo application: HTTP servers in node1 and node2 behind a LoadBalancer")
        for host in ("node1", "node2"):
            site = self.dir / f"site-{host}"
            site.mkdir(exist_ok=True)
            (site / "index.html").write_text(f"hello from the lbctl lab demo on {host}\n")
            server = the_lan.start(
                host,
                "demo-http",
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    "8080",
                    "--bind",
                    "::",  # IPv4 and IPv6 (the node's own namespace: nothing else listens)
                    "--directory",
                    str(site),
                ],
            )
            _record(state, server, self.state_file)
        deploy_demo(core, the_lan)
        external = wait_external_ip(core, DEMO_NS, "demo", timeout=60)
        say(f"demo Service address: {external}; checking it from the client")
        self._check_http(the_lan, external, timeout=60)

    def _up_nodes(self) -> None:
        say = self.say
        started = time.monotonic()
        install = lab_install()
        say("Kubernetes and etcd binaries (built once from the Go module proxy, then cached)")
        wanted = (*assets.ALL, assets.HELM) if install == "helm" else assets.ALL
        binaries = assets.ensure(wanted, progress=lambda m: say(f"  {m}"))
        pause, release = cluster.build_images(say)  # before a LAN range is held: builds are long
        state = State(lab_prefix(), "", "", [*NODES, "client"], kind="nodes", install=install)
        say("LAN: a free documentation range (waits while other labs hold every one)")

        def claimed(the_plan: plan.LanPlan) -> None:  # before anything is built
            state.subnet4, state.subnet6 = str(the_plan.subnet4), str(the_plan.subnet6)
            state.save(self.state_file)  # from here on, down knows what to remove
            say(f"LAN {state.subnet4} and {state.subnet6}: {', '.join(NODES)} and a client")

        the_lan = self.make_lan(state, on_plan=claimed)

        def remember(specs: list[nodes.NodeSpec]) -> None:
            state.real_nodes = [s.to_json() for s in specs]
            state.save(self.state_file)

        made = cluster.up(
            workdir=self.dir,
            the_lan=the_lan,
            node_names=NODES,
            binaries=binaries,
            pause=pause,
            release=release,
            record=lambda proc, argv0: _record(state, proc, self.state_file, argv0),
            remember_nodes=remember,
            say=say,
            install=install,
        )
        state.apiserver_port, state.kubeconfig = made.cp.port, str(made.cp.kubeconfig)
        state.save(self.state_file)
        from kubernetes import client, config

        core = client.CoreV1Api(config.new_client_from_config(config_file=state.kubeconfig))
        external = wait_external_ip(core, DEMO_NS, "demo", timeout=60)
        say(f"demo Service address: {external}; checking it from the client")
        self._check_http(the_lan, external, timeout=60)
        say(f"the lab is up in {time.monotonic() - started:.0f} s")

    def _kubectl_install(
        self, kubectl: Path, core: CoreV1Api, kubeconfig: Path, pool: JSONObject
    ) -> None:
        core.create_namespaced_config_map(
            LBCTL_NS,
            {"metadata": {"name": "lbctl-config"}, "data": {"config.yaml": yaml.safe_dump(pool)}},
        )
        self.say(
            "RBAC from deploy/rbac.yaml: the controller and speakers run as their ServiceAccounts"
        )
        rbac = REPO / "deploy" / "rbac.yaml"
        if not rbac.exists():
            raise LabError(f"{rbac} not found: run the lab from a clone of lbctl")
        subprocess.run(
            [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "-n", LBCTL_NS, "-f", str(rbac)],
            check=True,
            capture_output=True,
        )

    def _helm_install(self, helm: Path, kubeconfig: Path, pool: JSONObject) -> None:
        """The chart's objects (its Deployment and DaemonSet stay without Pods: the lab has no
        kubelet; its processes play them, with the chart's ServiceAccounts)."""
        if not (CHART / "Chart.yaml").exists():
            raise LabError(f"{CHART} not found: run the lab from a clone of lbctl")
        got = subprocess.run(
            [str(helm), "install", "lbctl", str(CHART), "-n", LBCTL_NS,
             "--set-json", f"config={json.dumps(pool)}", f"--kubeconfig={kubeconfig}",
             # The lab's speakers are processes with one unbound token, not Pods.
             "--set", "admissionPolicies=false"],
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if got.returncode != 0:
            raise LabError(f"helm install failed: {got.stderr.strip()}")

    def start_speaker(
        self, state: State, the_lan: lan.Lan, host: str, extra: tuple[str, ...] = ()
    ) -> None:
        """(Re)start the speaker of node ``host``, with extra flags (tests tune timings).

        Its metrics listen on the node's LAN address, where a Prometheus in the root namespace
        reaches them through the bridge."""
        address = the_lan.host(host).ipv4
        speaker = the_lan.start(
            host,
            "speaker",
            [
                sys.executable,
                "-m",
                "lbctl",
                "speaker",
                f"--kubeconfig={self.dir / 'speaker.kubeconfig'}",
                f"--node-name={host}",
                f"--metrics-address={address}",
                f"--metrics-port={SPEAKER_METRICS_PORT}",
                *extra,
            ],
        )
        state.metrics[host] = f"{address}:{SPEAKER_METRICS_PORT}"
        _record(state, speaker, self.state_file)

    def _check_http(self, the_lan: lan.Lan, ip: str, timeout: float) -> None:
        last = [""]

        def answers() -> bool:
            got = the_lan.run(
                "client", ["curl", "-sS", "--max-time", "2", f"http://{ip}/"], check=False
            )
            last[0] = got.stderr
            return got.returncode == 0 and "hello" in got.stdout

        try:
            waits.until(answers, timeout=timeout, interval=0.3)
        except waits.TimedOut:
            raise LabError(f"the demo at {ip} does not answer from the client: {last[0]}") from None

    # --- for tests and benchmarks: a node's faults, on a lab that is up ---

    def lan(self) -> lan.Lan:
        return lan.Lan(self._state().lan_plan(), self.dir / "lan")

    def metrics_targets(self) -> dict[str, str]:
        """Where each component serves /metrics: ``{"controller": "127.0.0.1:P", "node1": ...}``."""
        return dict(self._state().metrics)

    def speaker_pids(self, host: str) -> list[int]:
        return [p.pid for p in self._state().processes if p.name == f"speaker@{host}" and _alive(p)]

    def stop_speaker(self, host: str, sig: signal.Signals = signal.SIGKILL) -> None:
        self.stop(f"speaker@{host}", sig)

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop a recorded process (``controller``, ``speaker@node1``) as its Pod would be."""

        def pids() -> list[int]:
            return [p.pid for p in self._state().processes if p.name == name and _alive(p)]

        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
        procs.wait_until(f"{name} gone", lambda: not pids(), timeout=10)

    def restart_speaker(self, host: str, *extra: str) -> None:
        self.stop_speaker(host, signal.SIGTERM)
        self.start_speaker(self._state(), self.lan(), host, extra)

    def set_link(self, host: str, up: bool) -> None:
        """A node's LAN link down (cut off from the LAN and, in the lab, from the API) or up
        again with the addresses and routes the kernel dropped on down (the default routes a
        real node reaches the API server by, the routes to the other nodes' Pods)."""
        the_lan = self.lan()
        if not up:
            the_lan.run(host, ["ip", "link", "set", "eth0", "down"])
            return
        for cmd in lan.relink_commands(the_lan.plan, the_lan.host(host)):
            the_lan.run(host, cmd)
        specs = self._state().node_specs()
        for spec in specs:
            if spec.name == host:
                for cmd in nodes.peer_routes(spec, specs):
                    the_lan.run(host, cmd)

    def _state(self) -> State:
        state = self.state()
        if state is None:
            raise LabError("no lab here (lbctl lab up makes one)")
        return state

    # --- views ---

    def _healthy(self, state: State) -> bool:
        return bool(state.processes) and all(_alive(p) for p in state.processes)

    def show(self) -> None:
        state = self.state()
        if state is None:
            return
        out = self.kubectl(["get", "svc", "-A", "-o", "wide"], capture=True)
        self.say(out.rstrip())
        self.say("")
        self.say(f"kubeconfig: {state.kubeconfig}")
        self.say(
            "reach the demo from the LAN's client:  "
            "lbctl lab exec client curl http://<EXTERNAL-IP>/"
        )
        self.say(
            "more:  lbctl lab status | lbctl lab kubectl ... | lbctl status "
            f"--kubeconfig {state.kubeconfig} | lbctl lab down"
        )

    def status(self) -> int:
        state = self.state()
        if state is None:
            self.say("no lab here (lbctl lab up makes one)")
            return 1
        healthy = True
        for rec in state.processes:
            ok = _alive(rec)
            healthy &= ok
            self.say(f"{'ok  ' if ok else 'DOWN'}  {rec.name} (pid {rec.pid})")
        from pyroute2 import netns

        present = set(netns.listnetns())
        for host in state.hosts:
            name = f"{state.prefix}-{host}"
            ok = name in present
            healthy &= ok
            self.say(f"{'ok  ' if ok else 'GONE'}  namespace {name}")
        for spec in state.node_specs():
            daemons = nodes.cgroup_pids(spec)
            ok = bool(daemons)
            healthy &= ok
            self.say(f"{'ok  ' if ok else 'DOWN'}  node {spec.name}: {len(daemons)} processes "
                     f"in cgroup /{spec.cgroup}")  # fmt: skip
        if state.kind == "nodes" and healthy:
            healthy &= self._cluster_health()
        if healthy:
            self.say("")
            self.say(self.kubectl(["get", "svc", "-n", DEMO_NS], capture=True).rstrip())
        return 0 if healthy else 1

    def _cluster_health(self) -> bool:
        """Nodes Ready and every Pod Running and Ready, as the API server sees them."""
        from kubernetes import client, config

        state = self._state()
        api = config.new_client_from_config(config_file=state.kubeconfig)
        try:
            core = client.CoreV1Api(api)
            healthy = True
            self.say("")
            for node in core.list_node().items:
                ok = cluster._ready(node.status.conditions)
                healthy &= ok
                self.say(f"{'ok  ' if ok else 'DOWN'}  Node {node.metadata.name} "
                         f"{'Ready' if ok else 'NotReady'}")  # fmt: skip
            for pod in core.list_pod_for_all_namespaces().items:
                ok = pod.status.phase == "Running" and cluster._ready(pod.status.conditions)
                healthy &= ok
                where = pod.spec.node_name or "unscheduled"
                self.say(f"{'ok  ' if ok else 'DOWN'}  Pod {pod.metadata.namespace}/"
                         f"{pod.metadata.name} {pod.status.phase} on {where}")  # fmt: skip
            return healthy
        finally:
            api.close()

    def kubectl(self, args: list[str], *, capture: bool = False) -> str:
        state = self.state()
        if state is None:
            raise LabError("no lab here (lbctl lab up makes one)")
        kubectl = assets.locate(["kubectl"]).paths.get("kubectl")
        if kubectl is None:
            raise LabError("kubectl not found: lbctl binaries installs it")
        argv = [str(kubectl), f"--kubeconfig={state.kubeconfig}", *args]
        if capture:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        os.execv(argv[0], argv)
        return ""  # not reached

    def exec(self, host: str, argv: list[str]) -> int:
        state = self.state()
        if state is None:
            raise LabError("no lab here (lbctl lab up makes one)")
        if host not in state.hosts:
            raise LabError(f"no host {host!r}; hosts: {', '.join(state.hosts)}")
        return subprocess.run(
            procs.netns_argv(f"{state.prefix}-{host}", argv), check=False
        ).returncode

    # --- down ---

    def down(self, quiet: bool = False) -> int:
        state = self.state()
        if state is None:
            if not quiet:
                self.say("no lab here: nothing to remove")
            return 0
        problems: list[str] = []
        specs = state.node_specs()
        if specs:  # first, while the LAN and the API server are up; all nodes at once
            with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
                for left in pool.map(nodes.teardown, specs):
                    problems += left
            nodes.remove_device_plugin_dir()
        for rec in reversed(state.processes):
            if _alive(rec):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rec.pid, signal.SIGTERM)
        with contextlib.suppress(waits.TimedOut):  # then SIGKILL
            waits.until(
                lambda: not any(_alive(r) for r in state.processes), timeout=10, interval=0.1
            )
        for rec in state.processes:
            if _alive(rec):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rec.pid, signal.SIGKILL)
        lan.Lan(state.lan_plan(), self.dir / "lan").destroy()
        if problems:
            raise LabError("lab down left things behind: " + "; ".join(problems))
        shutil.rmtree(self.dir, ignore_errors=True)
        if not quiet:
            self.say(
                "the lab is down: its processes, namespaces, links, mounts, cgroups and files "
                "are gone"
            )
        return 0


def deploy_demo(core: CoreV1Api, the_lan: lan.Lan) -> None:
    """Host-network Pods in node1 and node2 (made Ready as a kubelet would) and a Service."""
    for host in ("node1", "node2"):
        name = f"demo-{host}"
        waits.retrying(
            functools.partial(create_pod, core, name, host),
            passes=cluster.no_service_account_yet,
            timeout=30,
            interval=0.2,
        )
        ip, ip6 = str(the_lan.host(host).ipv4), str(the_lan.host(host).ipv6)
        core.patch_namespaced_pod_status(
            name,
            DEMO_NS,
            {
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}, {"ip": ip6}],
                    "hostIP": ip,
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "ContainersReady", "status": "True"},
                    ],
                }
            },
        )
    core.create_namespaced_service(
        DEMO_NS,
        {
            "metadata": {"name": "demo"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "demo"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
    )


def create_pod(core: CoreV1Api, name: str, host: str) -> None:
    core.create_namespaced_pod(
        DEMO_NS,
        {
            "metadata": {"name": name, "labels": {"app": "demo"}},
            "spec": {
                "nodeName": host,
                "hostNetwork": True,
                "containers": [
                    {
                        "name": "http",
                        "image": "lbctl.invalid/demo:none",
                        "ports": [{"containerPort": 8080}],
                    }
                ],
            },
        },
    )


def service_account_token(core: CoreV1Api, ns: str, name: str, timeout: float = 30) -> str:
    """A token for a ServiceAccount from the TokenRequest API (``serviceaccounts/token``).

    Valid for a year: the lab's processes are not Pods, so nothing would refresh it. Retried
    until the ServiceAccount exists (the manifests were applied a moment ago).
    """
    from kubernetes.client.exceptions import ApiException

    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 365 * 24 * 3600},
    }
    try:
        made = waits.retrying(
            lambda: core.create_namespaced_service_account_token(name, ns, body),
            passes=lambda exc: isinstance(exc, ApiException) and exc.status == 404,
            timeout=timeout,
            interval=0.2,
        )
    except ApiException as exc:
        raise LabError(f"no token for ServiceAccount {ns}/{name}: {exc.reason}") from exc
    return str(made.status.token)


def wait_external_ip(core: CoreV1Api, ns: str, name: str, timeout: float) -> str:
    try:
        ingress = waits.until(
            lambda: core.read_namespaced_service(name, ns).status.load_balancer.ingress,
            timeout=timeout,
            interval=0.2,
        )
    except waits.TimedOut:
        raise LabError(
            f"Service {ns}/{name} got no EXTERNAL-IP in {timeout:.0f} s (lbctl status says why)"
        ) from None
    return str(ingress[0].ip)
