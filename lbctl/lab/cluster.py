"""The real-node lab: a Kubernetes cluster of node namespaces that runs the release (I/O, root).

What ``lbctl lab up`` does, in the order a user with kind would do it:

1. images: the pause image, and the release image built from the project's own Dockerfile
   (``images``; cached by content, so usually nothing is built);
2. a control plane on the LAN's gateway: etcd, kube-apiserver, kube-controller-manager with
   all its default controllers, kube-scheduler; the API server logs every write (who, what,
   when; no bodies) to ``cp/audit/audit.log``, which ``bench/peers.py`` counts per component;
3. three nodes (``nodes``): containerd, a kubelet and kube-proxy in each namespace; the images
   imported into every node's containerd, as ``kind load docker-image`` does;
4. ``kubectl apply -k`` of an overlay of ``deploy/`` whose only change is the pool, then a
   wait until the controller Deployment and the speaker DaemonSet are Running and Ready;
5. the demo: a Deployment of three HTTP servers that say which Pod answered, behind a
   ``type: LoadBalancer`` Service.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lbctl.jsonvalue import JSONObject, JSONValue
from lbctl.lab import assets, controlplane, images, lan, nodes, plan, procs, waits

if TYPE_CHECKING:  # the client's types, for reading; imported at run time where used
    from kubernetes.client import AppsV1Api, CoreV1Api, V1NodeCondition

SOURCE = Path(__file__).resolve().parents[2]  # the clone: Dockerfile and deploy/
LBCTL_NS = "lbctl-system"
DEMO_NS = "demo"
Say = Callable[[str], None]
Record = Callable[[procs.Process, str], None]  # (process, the program its PID runs)

DEMO_SERVER = """\
import http.server, os, socket
WHO = f"pod {os.environ['POD_NAME']} on {os.environ['NODE_NAME']}"
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from the lbctl lab demo: {WHO}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6  # "::" takes IPv4 too (v4-mapped)
Server(("::", 8080), Handler).serve_forever()
"""


class ClusterError(RuntimeError):
    """The real-node lab could not be brought up; the message says which step."""


def pool_ranges(the_plan: plan.LanPlan) -> list[str]:
    """The lab's pool ranges: .200-.250 of the LAN, and ::200-::2ff (pure)."""
    gw, gw6 = the_plan.subnet4.network_address, the_plan.subnet6.network_address
    return [f"{gw + 200}-{gw + 250}", f"{gw6 + 0x200}-{gw6 + 0x2FF}"]


def pool_yaml(the_plan: plan.LanPlan) -> str:
    """lbctl's config with the lab's pool, named ``lab`` (pure)."""
    lines = "".join(f"      - {r}\n" for r in pool_ranges(the_plan))
    return "pools:\n  - name: lab\n    addresses:\n" + lines


def overlay(deploy_dir: Path, overlay_dir: Path, pool: str) -> str:
    """A kustomization whose only change to ``deploy/`` is the pool (pure).

    Kustomize refuses an absolute path to a base directory, so ``deploy/`` is named relative
    to the overlay.
    """
    base = os.path.relpath(deploy_dir, overlay_dir)
    indented = "".join(f"          {line}\n" for line in pool.splitlines())
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {base}\n"
        "patches:\n  - patch: |-\n"
        "      apiVersion: v1\n      kind: ConfigMap\n"
        f"      metadata: {{name: lbctl-config, namespace: {LBCTL_NS}}}\n"
        "      data:\n        config.yaml: |\n" + indented
    )


def demo_deployment(image: str, replicas: int = 3) -> JSONObject:
    """Three HTTP servers, one per node, saying which Pod answered (pure)."""
    labels = {"app": "demo"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": DEMO_NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "http",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", DEMO_SERVER],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                },
                            ],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": 8080},
                                "periodSeconds": 2,
                            },
                        }
                    ],
                },
            },
        },
    }


def demo_service(name: str = "demo", **spec: JSONValue) -> JSONObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": DEMO_NS},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "demo"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            **spec,
        },
    }


@dataclass
class Cluster:
    """What ``up`` made, for the lab's state and for tests."""

    cp: controlplane.ControlPlane
    specs: list[nodes.NodeSpec]
    release: images.Image


def build_images(say: Say) -> tuple[images.Image, images.Image]:
    """The pause and release images (built once per content, then from the cache)."""
    say("images: pause, and the release from the Dockerfile (cached by content)")
    builder = images.Builder(assets.cache_root(), say=lambda m: say(f"  {m}"))
    go = assets.find_go(os.environ)
    pause = builder.pause(assets.kube_version(), go=go)
    release = builder.release(SOURCE, images.deploy_image(SOURCE / "deploy"))
    for image in (pause, release):
        took = "from the cache" if image.seconds is None else f"built in {image.seconds:.0f} s"
        say(f"  {image.name}: {took}")
    return pause, release


def up(
    *,
    workdir: Path,
    the_lan: lan.Lan,
    node_names: Sequence[str],
    binaries: Mapping[str, Path],
    pause: images.Image,
    release: images.Image,
    record: Record,
    install: str = "kubectl",
    remember_nodes: Callable[[list[nodes.NodeSpec]], None],
    say: Say,
) -> Cluster:
    """Bring the real-node cluster up on ``the_lan``; every process goes to ``record`` and the
    node plan to ``remember_nodes`` before anything of a node exists (so ``down`` finds it)."""
    started = time.monotonic()
    nodes.check_no_host_kubelet()
    gateway = str(the_lan.plan.gateway4)
    say("control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
    cp = controlplane.ControlPlane(
        workdir=workdir / "cp",
        binaries=binaries,
        bind_address="0.0.0.0",
        advertise_address=gateway,
        extra_sans=plan.candidate_gateways(),
        apiserver_args=controlplane.audit_args(workdir / "cp" / "audit"),
    )
    cp.start()
    for proc in cp.processes:
        record(proc, Path(proc.argv[0]).name)
    for proc in cp.start_cluster_controllers():
        record(proc, Path(proc.argv[0]).name)

    hosts = [the_lan.host(n) for n in node_names]
    specs = nodes.plan_nodes(
        the_lan.plan.prefix,
        [(h.name, h.netns, str(h.ipv4), str(h.ipv6)) for h in hosts],
        workdir / "nodes",
    )
    remember_nodes(specs)
    controlplane.client_certificate(cp.pki, "kube-proxy", "system:kube-proxy")
    proxy_conf = cp.write_kubeconfig(
        workdir / "kube-proxy.kubeconfig", host=gateway, cert="kube-proxy", user="kube-proxy"
    )
    say(f"nodes: containerd, kubelet and kube-proxy in {', '.join(node_names)}")
    the_nodes = [nodes.Node(s, binaries) for s in specs]
    for node in the_nodes:
        node.prepare(sandbox_image=pause.name, ca_file=cp.ca_file, peers=specs)
        record(node.containerd(), "containerd")
    say(f"  importing {release.name} and {pause.name} into every node's containerd")
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(the_nodes)) as pool:
        jobs = [
            pool.submit(images.import_image, n.spec.socket, image, log=n.spec.path / "import.log")
            for n in the_nodes
            for image in (pause, release)
        ]
        for job in jobs:
            job.result()
    say(f"  imported in {time.monotonic() - t0:.0f} s")
    for node in the_nodes:
        name = node.spec.name
        controlplane.client_certificate(
            cp.pki, f"node-{name}", f"system:node:{name}", "system:nodes"
        )
        conf = cp.write_kubeconfig(
            node.spec.path / "kubelet.kubeconfig",
            host=gateway,
            cert=f"node-{name}",
            user=f"system:node:{name}",
        )
        record(node.kubelet(conf), "kubelet")
        record(node.kube_proxy(proxy_conf), "kube-proxy")

    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    wait_nodes_ready(core, node_names, timeout=120)
    say(f"  nodes Ready {time.monotonic() - started:.0f} s after start")

    if install == "helm":
        say("the release: helm install of deploy/helm/lbctl (values: the pool only)")
        helm_install(binaries, cp.kubeconfig, pool_yaml(the_lan.plan))
    else:
        say("the release: kubectl apply -k deploy/ (a lab overlay: the pool only)")
        overlay_dir = workdir / "overlay"
        overlay_dir.mkdir(parents=True, exist_ok=True)
        (overlay_dir / "kustomization.yaml").write_text(
            overlay(SOURCE / "deploy", overlay_dir, pool_yaml(the_lan.plan))
        )
        kubectl(binaries, cp.kubeconfig, "apply", "-k", str(overlay_dir))
    wait_release_ready(apps, len(node_names), timeout=240)
    took = time.monotonic() - started
    say(f"  lbctl's controller (2 replicas) and speakers Ready {took:.0f} s after start")

    say("the demo: a Deployment of 3 HTTP servers behind a LoadBalancer Service")
    create_demo(core, apps, release.name)
    return Cluster(cp, specs, release)


def kubectl(binaries: Mapping[str, Path], kubeconfig: Path, *args: str) -> str:
    return procs.output(
        [str(binaries["kubectl"]), f"--kubeconfig={kubeconfig}", *args],
        error=ClusterError,
        what=f"kubectl {' '.join(args)}",
    )


def helm_install(binaries: Mapping[str, Path], kubeconfig: Path, pool: str) -> None:
    """``helm install`` of the chart, as a user would: only the pool set (as values)."""
    import json

    import yaml

    procs.output(
        [str(binaries[assets.HELM]), "install", "lbctl", str(SOURCE / "deploy" / "helm" / "lbctl"),
         "-n", LBCTL_NS, "--create-namespace", f"--kubeconfig={kubeconfig}",
         "--set-json", f"config={json.dumps(yaml.safe_load(pool))}"],
        error=ClusterError, what="helm install failed",
    )  # fmt: skip


def _ready(conditions: Sequence[V1NodeCondition] | None) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def wait_nodes_ready(core: CoreV1Api, names: Sequence[str], *, timeout: float) -> None:
    def ready() -> bool:
        found = {n.metadata.name: _ready(n.status.conditions) for n in core.list_node().items}
        return all(found.get(name) for name in names)

    try:
        procs.wait_until("every node Ready", ready, timeout=timeout, interval=1)
    except procs.ProcessError as exc:
        raise ClusterError(f"{exc} (kubelet logs: <lab>/nodes/NODE/kubelet.log)") from None


def rollout_ready(
    apps: AppsV1Api, ns: str, deployment: str, daemon_set: str, node_count: int
) -> tuple[bool, str]:
    """Whether a controller Deployment (all replicas) and a speaker DaemonSet (one per node)
    are rolled out and Ready; and a line saying where they are."""
    dep = apps.read_namespaced_deployment(deployment, ns)
    ds = apps.read_namespaced_daemon_set(daemon_set, ns)
    want = dep.spec.replicas or 0
    d, s = dep.status, ds.status
    ok = (
        want >= 1
        and (d.ready_replicas or 0) == want
        and (d.updated_replicas or 0) == want
        and (d.replicas or 0) == want
        and s.desired_number_scheduled == node_count
        and (s.number_ready or 0) == node_count
        and (s.updated_number_scheduled or 0) == node_count
    )
    line = (
        f"controller {d.ready_replicas or 0}/{want} ready, "
        f"speaker {s.number_ready or 0}/{s.desired_number_scheduled} ready"
    )
    return ok, line


def release_ready(apps: AppsV1Api, node_count: int) -> tuple[bool, str]:
    """:func:`rollout_ready` for lbctl's own controller and speakers."""
    return rollout_ready(apps, LBCTL_NS, "lbctl-controller", "lbctl-speaker", node_count)


def wait_rollout(
    apps: AppsV1Api,
    ns: str,
    deployment: str,
    daemon_set: str,
    node_count: int,
    *,
    timeout: float,
) -> None:
    """Wait for :func:`rollout_ready`; :class:`ClusterError` saying where they are if not."""
    last = [""]

    def ready() -> bool:
        ok, last[0] = rollout_ready(apps, ns, deployment, daemon_set, node_count)
        return ok

    try:
        procs.wait_until(f"{ns}'s Pods Ready", ready, timeout=timeout, interval=1)
    except procs.ProcessError as exc:
        raise ClusterError(f"{exc}: {last[0]} (lbctl lab kubectl get pods -A)") from None


def wait_release_ready(apps: AppsV1Api, node_count: int, *, timeout: float) -> None:
    wait_rollout(apps, LBCTL_NS, "lbctl-controller", "lbctl-speaker", node_count, timeout=timeout)


def remove_release(
    binaries: Mapping[str, Path], kubeconfig: Path, workdir: Path, install: str = "kubectl"
) -> None:
    """Uninstall lbctl as it was installed (``kubectl delete -k`` of the lab overlay, or
    ``helm uninstall``) and wait until its namespace and Pods are gone. Delete the
    LoadBalancer Services first, while lbctl still runs: it removes its finalizer from them."""
    if install == "helm":
        procs.output(
            [str(binaries[assets.HELM]), "uninstall", "lbctl", "-n", LBCTL_NS, "--wait",
             f"--kubeconfig={kubeconfig}"],
            error=ClusterError, what="helm uninstall failed",
        )  # fmt: skip
        kubectl(binaries, kubeconfig, "delete", "namespace", LBCTL_NS, "--ignore-not-found")
    else:
        kubectl(binaries, kubeconfig, "delete", "-k", str(workdir / "overlay"), "--wait=true")


def no_service_account_yet(exc: BaseException) -> bool:
    """Pod admission refusing a Pod in a namespace made a moment ago: 403 "serviceaccount not
    found", 500 "no API token yet"; both pass shortly, once the default ServiceAccount exists."""
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException) and exc.status in (403, 500)


def create_demo(core: CoreV1Api, apps: AppsV1Api, image: str) -> None:
    core.create_namespace({"metadata": {"name": DEMO_NS}})
    waits.retrying(
        lambda: apps.create_namespaced_deployment(DEMO_NS, demo_deployment(image)),
        passes=no_service_account_yet,
        timeout=30,
        interval=0.2,
    )
    core.create_namespaced_service(DEMO_NS, demo_service())
    procs.wait_until(
        "the demo's 3 Pods Ready",
        lambda: (apps.read_namespaced_deployment("demo", DEMO_NS).status.ready_replicas or 0) == 3,
        timeout=120,
        interval=1,
    )
