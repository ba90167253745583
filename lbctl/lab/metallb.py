"""MetalLB in the real-node lab, installed as its own manifest installs it (I/O, root).

For measuring MetalLB beside lbctl in one lab (``bench/peers.py``), one after the other: the
two never serve the same Services at once.

- binaries: MetalLB's controller and speaker built from the Go module proxy
  (:func:`lbctl.lab.assets.ensure_metallb`), cached by version;
- images: each binary alone in a one-layer image (what its Dockerfiles' ``FROM
  distroless/static`` + ``COPY`` make, minus distroless' few files), named as MetalLB publishes
  them (``quay.io/metallb/controller:v0.16.2``), imported into every node's containerd;
- manifests: the module's own ``config/manifests/metallb-native.yaml`` (namespace, CRDs, RBAC,
  controller Deployment, speaker DaemonSet on the host network with memberlist) with the
  webhooks off, as the chart's ``controller.webhookMode: disabled`` does: the controller runs
  with ``--webhook-mode=disabled`` and the ValidatingWebhookConfiguration is left out. The
  controller creates the memberlist Secret the speakers mount;
- configuration: an ``IPAddressPool`` of the lab's pool ranges and an ``L2Advertisement`` of it
  (layer 2 on every node).
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lbctl.jsonvalue import JSONObject, JSONValue
from lbctl.lab import assets, cluster, images, nodes, procs
from lbctl.lab import lab as lab_mod

if TYPE_CHECKING:  # the client's types, for reading; imported at run time where used
    from kubernetes.client import AppsV1Api, V1Service

NAMESPACE = "metallb-system"
CONTROLLER = "controller"  # the Deployment's name in metallb-native.yaml
SPEAKER = "speaker"  # the DaemonSet's name
NATIVE = Path("config/manifests/metallb-native.yaml")  # in the go.universe.tf/metallb module
POOL = "lab"
API = "metallb.io/v1beta1"
CRDS = ("ipaddresspools.metallb.io", "l2advertisements.metallb.io")
Say = Callable[[str], None]


class MetalLBError(RuntimeError):
    """MetalLB could not be built, installed or removed; the message says which step."""


# --- pure ---


def image_names(version: str) -> dict[str, str]:
    """The images MetalLB publishes for ``version``, by binary (``controller``, ``speaker``)."""
    return {name: f"quay.io/metallb/{name}:{version}" for name in assets.METALLB}


def _workload_images(obj: Mapping[str, Any]) -> list[str]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [str(c.get("image")) for c in spec.get("containers", [])]


def native_objects(text: str, version: str) -> list[JSONObject]:
    """The objects of ``metallb-native.yaml`` with the webhooks off (pure).

    Raises :class:`MetalLBError` when the manifest's workloads run other images than
    :func:`image_names` (the ones the lab makes), or lack the controller or the speaker.
    """
    found: list[JSONObject] = []
    wanted = set(image_names(version).values())
    kinds: set[tuple[str, str]] = set()
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        obj = copy.deepcopy(doc)
        kind, name = obj.get("kind", ""), obj.get("metadata", {}).get("name", "")
        kinds.add((kind, name))
        if kind == "ValidatingWebhookConfiguration":
            continue  # webhooks off: nothing serves them
        if kind == "Deployment" and name == CONTROLLER:
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [*container.get("args", []), "--webhook-mode=disabled"]
        unknown = set(_workload_images(obj)) - wanted
        if unknown:
            raise MetalLBError(f"{kind} {name} runs {sorted(unknown)}, not {sorted(wanted)}")
        found.append(obj)
    for need in (("Deployment", CONTROLLER), ("DaemonSet", SPEAKER)):
        if need not in kinds:
            raise MetalLBError(f"metallb-native.yaml has no {need[0]} {need[1]}")
    return found


def config_objects(ranges: Sequence[str]) -> list[JSONObject]:
    """An ``IPAddressPool`` of ``ranges`` and an ``L2Advertisement`` of it, both named
    :data:`POOL` (pure; MetalLB's ``metallb.io/v1beta1`` API)."""
    meta = {"name": POOL, "namespace": NAMESPACE}
    return [
        {"apiVersion": API, "kind": "IPAddressPool", "metadata": meta,
         "spec": {"addresses": list(ranges)}},
        {"apiVersion": API, "kind": "L2Advertisement", "metadata": dict(meta),
         "spec": {"ipAddressPools": [POOL]}},
    ]  # fmt: skip


# --- I/O ---


@dataclass(frozen=True)
class Built:
    version: str
    images: list[images.Image]
    native: Path  # metallb-native.yaml in the module cache
    pinned: dict[str, str]  # dependencies pinned because the proxy does not serve them


def build(say: Say) -> Built:
    """Binaries, images and manifest of MetalLB (:func:`assets.metallb_version`); build this
    before a LAN is held: a cold build takes minutes."""
    import json

    version = assets.metallb_version()
    binaries = assets.ensure_metallb(progress=lambda m: say(f"  {m}"))
    builder = images.Builder(assets.cache_root(), say=lambda m: say(f"  {m}"))
    made = [builder.static_binary(image, binaries[name]) for name, image in
            image_names(version).items()]  # fmt: skip
    go = assets.find_go(os.environ)
    native = assets.module_dir(go, assets.METALLB_MODULE, version) / NATIVE
    if not native.is_file():
        raise MetalLBError(f"{native} not found in the {assets.METALLB_MODULE} module")
    info = assets.metallb_dir().parent / "build.json"
    pinned = json.loads(info.read_text()).get("pinned", {}) if info.is_file() else {}
    return Built(version, made, native, dict(pinned))


def load(specs: Sequence[nodes.NodeSpec], built: Built) -> None:
    """Import the images into every node's containerd, as ``kind load`` would."""
    with concurrent.futures.ThreadPoolExecutor(len(specs) or 1) as pool:
        jobs = [
            pool.submit(images.import_image, s.socket, image, log=s.path / "import.log")
            for s in specs
            for image in built.images
        ]
        for job in jobs:
            job.result()


def _apply(
    binaries: Mapping[str, Path], kubeconfig: Path, path: Path, objs: Sequence[JSONValue]
) -> None:
    path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
    cluster.kubectl(binaries, kubeconfig, "apply", "-f", str(path))


def install(
    binaries: Mapping[str, Path],
    kubeconfig: Path,
    built: Built,
    ranges: Sequence[str],
    workdir: Path,
) -> None:
    """``kubectl apply`` of the manifest, then (its CRDs established) of the pool."""
    workdir.mkdir(parents=True, exist_ok=True)
    objs = native_objects(built.native.read_text(), built.version)
    _apply(binaries, kubeconfig, workdir / "metallb-native.yaml", objs)
    cluster.kubectl(binaries, kubeconfig, "wait", "--for=condition=Established",
                    "--timeout=60s", *(f"crd/{c}" for c in CRDS))  # fmt: skip
    _apply(binaries, kubeconfig, workdir / "metallb-config.yaml", config_objects(ranges))


def wait_ready(apps: AppsV1Api, node_count: int, *, timeout: float = 240) -> None:
    """The controller and a speaker on every node Running and Ready."""
    cluster.wait_rollout(apps, NAMESPACE, CONTROLLER, SPEAKER, node_count, timeout=timeout)


def uninstall(binaries: Mapping[str, Path], kubeconfig: Path, workdir: Path) -> None:
    """Remove the pool, then everything the manifest made; wait until it is gone."""
    for name in ("metallb-config.yaml", "metallb-native.yaml"):
        if (workdir / name).is_file():
            cluster.kubectl(binaries, kubeconfig, "delete", "--ignore-not-found", "--wait=true",
                            "-f", str(workdir / name))  # fmt: skip


def replace_lbctl(the_lab: lab_mod.Lab, built: Built, say: Say) -> str:
    """In a real-node lab that runs lbctl: delete the LoadBalancer Services while lbctl still
    runs (it removes its finalizer), uninstall lbctl, install MetalLB, create the demo Service
    again; return the address MetalLB gave it. Other LoadBalancer Services go too."""
    from kubernetes import client, config

    state = the_lab.state()
    if state is None or state.kind != "nodes":
        raise MetalLBError("no real-node lab here (lbctl lab up makes one)")
    binaries = assets.ensure(assets.ALL, progress=lambda _: None)
    kubeconfig = Path(state.kubeconfig)
    with config.new_client_from_config(config_file=state.kubeconfig) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        say("the LoadBalancer Services deleted while lbctl runs, then lbctl uninstalled")

        def balanced() -> list[V1Service]:
            return [s for s in core.list_service_for_all_namespaces().items
                    if s.spec.type == "LoadBalancer"]  # fmt: skip

        for svc in balanced():
            core.delete_namespaced_service(svc.metadata.name, svc.metadata.namespace)
        started = time.monotonic()
        # Long: after a partition of its node, lbctl's leader sat on a dead watch until its
        # read timeout (270 s) in bench/peers.py; TCP keepalive now notices within 25 s.
        procs.wait_until("the LoadBalancer Services gone", lambda: not balanced(),
                         timeout=420, interval=0.5)  # fmt: skip
        say(f"lbctl released them in {time.monotonic() - started:.1f} s")
        cluster.remove_release(binaries, kubeconfig, the_lab.dir, state.install)
        say(f"MetalLB {built.version}: images into every node, metallb-native.yaml applied")
        specs = state.node_specs()
        load(specs, built)
        ranges = cluster.pool_ranges(the_lab.lan().plan)
        install(binaries, kubeconfig, built, ranges, the_lab.dir / "metallb")
        wait_ready(apps, len(specs))
        core.create_namespaced_service(cluster.DEMO_NS, cluster.demo_service())
        address = lab_mod.wait_external_ip(core, cluster.DEMO_NS, "demo", timeout=120)
    say(f"MetalLB gave the demo Service {address}")
    return address
