"""Real nodes: containerd, a kubelet and kube-proxy in each node's namespace (I/O, root).

A node is a network namespace of the lab LAN plus, all started with
``nsenter --net=/run/netns/NS`` (``ip netns exec`` would remount /sys and hide the cgroup tree):

- containerd with its own root, state, socket, runc root and CNI config: pod networks come
  from the CNI ``bridge`` + ``host-local`` plugins on a per-node pod CIDR;
- a kubelet (cgroupfs driver, its own cgroup root and root dir) that registers the node;
- kube-proxy (iptables mode), as a node process: the lab has no image for it.

Every process of a node runs in one cgroup, ``/<prefix>-<node>``, in the pids hierarchy (the
kubelet puts its Pods under the same root), so the node's processes, containerd's shims and
every container are found, and killed, by cgroup: never by name. Everything a node mounts
lives under its directory, so ``teardown`` unmounts by path. ``teardown`` needs only the
``NodeSpec``, which the lab keeps in its state file: it works after a crash too.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lbctl.jsonvalue import JSONObject
from lbctl.lab import procs, waits

CLUSTER_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")  # pod addresses: node namespaces only
CGROUPS = Path("/sys/fs/cgroup")
CONTAINERD_SHIM_SOCKETS = Path("/run/containerd/s")  # fixed in containerd 1.6, shared
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # fixed in the kubelet, shared
# The kubelet's device manager listens at a fixed path, whatever --root-dir says, and empties
# that directory (but for its checkpoint) when it starts: shared by every kubelet here.
HOST_KUBELET_DIR = Path("/var/lib/kubelet")
DEVICE_PLUGINS = HOST_KUBELET_DIR / "device-plugins"
DEVICE_PLUGIN_FILES = ("kubelet.sock", "kubelet_internal_checkpoint")
MAX_DIR = 60  # unix socket paths (108 bytes) are made below a node's directory


class NodeError(RuntimeError):
    """A node could not be set up or removed; the message says which step."""


# --- pure: the plan and the configuration files ---


@dataclass(frozen=True)
class NodeSpec:
    """One node: everything needed to start it and, later, to remove every trace of it."""

    name: str  # the Node object's name
    netns: str  # its network namespace
    index: int  # 1, 2, ...: picks its pod CIDRs
    ipv4: str
    ipv6: str
    dir: str  # containerd's and the kubelet's files, and every mount they make
    cgroup: str  # top-level cgroup name, in every hierarchy: "<prefix>-<name>"

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def socket(self) -> Path:
        return self.path / "containerd.sock"

    @property
    def pod_cidrs(self) -> tuple[str, str]:
        return pod_cidrs(self.index)

    @property
    def pod_logs(self) -> Path:
        return self.path / "pod-logs"

    def to_json(self) -> JSONObject:
        return asdict(self)


def pod_cidrs(index: int) -> tuple[str, str]:
    """Node ``index``'s pod ranges: 10.244.<index>.0/24 and fd00:10:244:<index>::/64 (pure)."""
    if not 1 <= index <= 255:
        raise NodeError(f"node index {index}: want 1-255")
    return f"10.244.{index}.0/24", f"fd00:10:244:{index:x}::/64"


def plan_nodes(
    prefix: str, hosts: Sequence[tuple[str, str, str, str]], directory: Path
) -> list[NodeSpec]:
    """NodeSpecs for (name, netns, ipv4, ipv6) hosts, files under ``directory`` (pure)."""
    if len(str(directory)) > MAX_DIR - 10:
        raise NodeError(
            f"{directory} is too long for the unix sockets made below it (containerd's, the "
            f"kubelet's): use a lab directory of at most {MAX_DIR - 10} characters"
        )
    return [
        NodeSpec(name, netns, i, ipv4, ipv6, str(directory / name), f"{prefix}-{name}")
        for i, (name, netns, ipv4, ipv6) in enumerate(hosts, start=1)
    ]


def containerd_config(spec: NodeSpec, sandbox_image: str) -> str:
    """containerd 1.6 config (version 2) whose every path is the node's own (pure)."""
    d = spec.path / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{d / "root"}"
state = "{d / "state"}"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{spec.socket}"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # No CAP_SYS_RESOURCE here: never ask for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  # Pod network namespaces below the node's state dir, not in the shared /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d / "runc"}"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{spec.path / "cni" / "net.d"}"
"""


def cni_config(spec: NodeSpec) -> JSONObject:
    """A dual-stack bridge network on the node's pod CIDRs (pure)."""
    v4, v6 = spec.pod_cidrs
    return {
        "cniVersion": "0.4.0",
        "name": "lab",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,  # one MASQUERADE rule per node instead: see network_commands
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(spec.path / "cni" / "ipam"),
                    "ranges": [[{"subnet": v4}], [{"subnet": v6}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def kubelet_config(spec: NodeSpec, *, ca_file: Path) -> JSONObject:
    """The KubeletConfiguration that works here (see REAL-NODES-NOTES.md) (pure)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": spec.ipv4,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",  # no systemd on these machines
        "cgroupRoot": f"/{spec.cgroup}",  # three kubelets, one machine: one root each
        "cgroupsPerQOS": True,
        "containerRuntimeEndpoint": f"unix://{spec.socket}",
        "failSwapOn": False,
        "oomScoreAdj": 0,  # negative values need CAP_SYS_RESOURCE
        "podLogsDir": str(spec.pod_logs),
        # Images cannot be pulled back: never collect them, never evict for disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {},
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
        # A dead node is noticed in seconds (with the controller-manager's grace period).
        "nodeLeaseDurationSeconds": 10,
        "nodeStatusUpdateFrequency": "4s",
        "nodeStatusReportFrequency": "20s",
    }


def network_commands(spec: NodeSpec, peers: Iterable[NodeSpec]) -> list[list[str]]:
    """Commands (run inside the node) for forwarding, routes to peers' pods, and SNAT (pure).

    Pods leaving the cluster CIDR are masqueraded to the node's address, as kindnet does: the
    API server's namespace has no route back to pod addresses.
    """
    cmds = [["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]]
    cmds += peer_routes(spec, peers)
    for tool, cidr in (("iptables", CLUSTER_CIDRS[0]), ("ip6tables", CLUSTER_CIDRS[1])):
        rule = ["POSTROUTING", "-s", cidr, "!", "-d", cidr, "-j", "MASQUERADE"]
        cmds.append([tool, "-w", "-t", "nat", "-A", *rule])
    return cmds


def peer_routes(spec: NodeSpec, peers: Iterable[NodeSpec]) -> list[list[str]]:
    """``ip route replace`` commands (run inside the node) to every peer's pod CIDRs via its
    LAN address (pure); the kernel drops them when the node's link goes down."""
    cmds = []
    for peer in peers:
        if peer.name == spec.name:
            continue
        v4, v6 = peer.pod_cidrs
        cmds.append(["ip", "route", "replace", v4, "via", peer.ipv4])
        cmds.append(["ip", "-6", "route", "replace", v6, "via", peer.ipv6])
    return cmds


def shim_socket(address: Path, namespace: str, container_id: str) -> Path:
    """Where containerd 1.6 puts a shim's socket: sha256(address/namespace/id) (pure)."""
    digest = hashlib.sha256(f"{address}/{namespace}/{container_id}".encode()).hexdigest()
    return CONTAINERD_SHIM_SOCKETS / digest


def unescape_mountinfo(field: str) -> str:
    """/proc/self/mountinfo escapes space, tab, newline and backslash as octal (pure)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts_below(mountinfo: str, directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest (then newest) first (pure)."""
    top = str(directory).rstrip("/")
    found = []
    for line in mountinfo.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        point = unescape_mountinfo(parts[4])
        if point == top or point.startswith(top + "/"):
            found.append(point)
    ordered = sorted(enumerate(found), key=lambda t: (t[1].count("/"), t[0]), reverse=True)
    return [Path(p) for _, p in ordered]


# --- I/O ---


def tracking_hierarchy() -> Path:
    """The cgroup hierarchy that tracks a node's processes: pids on v1, the root on v2."""
    if (CGROUPS / "pids" / "cgroup.procs").exists():
        return CGROUPS / "pids"
    if (CGROUPS / "cgroup.controllers").exists():
        return CGROUPS
    raise NodeError("no pids cgroup hierarchy (v1) and no unified hierarchy (v2) mounted")


def hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd, unified)."""
    if (CGROUPS / "cgroup.controllers").exists():
        return [CGROUPS]
    return sorted(p for p in CGROUPS.iterdir() if p.is_dir() and not p.is_symlink())


def make_cgroups(spec: NodeSpec) -> None:
    """The kubelet's cgroupRoot in every hierarchy (it refuses a missing one)."""
    for h in hierarchies():
        (h / spec.cgroup).mkdir(exist_ok=True)


def cgroup_pids(spec: NodeSpec) -> set[int]:
    """Every process in the node's cgroup tree: its daemons, shims and containers."""
    top = tracking_hierarchy() / spec.cgroup
    found: set[int] = set()
    if not top.is_dir():
        return found
    for procs_file in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in procs_file.read_text().split())
    return found


def in_cgroup_argv(spec: NodeSpec, part: str, argv: Sequence[str]) -> list[str]:
    """``argv`` inside the node's namespace, its process in cgroup ``/<node>/<part>``."""
    group = tracking_hierarchy() / spec.cgroup / part
    group.mkdir(parents=True, exist_ok=True)
    return [
        "sh",
        "-c",
        'echo $$ > "$0" && exec "$@"',  # join the cgroup, then become the daemon
        str(group / "cgroup.procs"),
        "nsenter",
        f"--net=/run/netns/{spec.netns}",
        *argv,
    ]


def run_in(spec: NodeSpec, argv: Sequence[str]) -> str:
    """Run ``argv`` in the node's network namespace; its standard output, or NodeError."""
    return procs.output(
        ["nsenter", f"--net=/run/netns/{spec.netns}", *argv],
        error=NodeError,
        what=f"{spec.name}: {' '.join(argv)}",
    )


@dataclass
class Node:
    """Start and stop one node's daemons. ``binaries`` maps kubelet and kube-proxy to paths."""

    spec: NodeSpec
    binaries: Mapping[str, Path]

    def prepare(self, *, sandbox_image: str, ca_file: Path, peers: Sequence[NodeSpec]) -> None:
        """Directories, config files, cgroups and the node's pod network (routes, SNAT)."""
        s = self.spec
        (s.path / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        s.pod_logs.mkdir(parents=True, exist_ok=True)
        (s.path / "containerd.toml").write_text(containerd_config(s, sandbox_image))
        (s.path / "cni" / "net.d" / "10-lab.conflist").write_text(
            json.dumps(cni_config(s), indent=2)
        )
        (s.path / "kubelet.yaml").write_text(json.dumps(kubelet_config(s, ca_file=ca_file)))
        make_cgroups(s)
        for cmd in network_commands(s, peers):
            run_in(s, cmd)

    def containerd(self) -> procs.Process:
        s = self.spec
        argv = ["containerd", "--config", str(s.path / "containerd.toml")]
        proc = self._daemon("containerd", argv)
        procs.wait_until(f"containerd@{s.name} socket", s.socket.exists, timeout=30, watch=[proc])
        return proc

    def kubelet(self, kubeconfig: Path) -> procs.Process:
        s = self.spec
        return self._component(
            "kubelet",
            kubeconfig,
            f"--config={s.path / 'kubelet.yaml'}",
            f"--root-dir={s.path / 'kubelet'}",
            f"--cert-dir={s.path / 'kubelet' / 'pki'}",
            f"--node-ip={s.ipv4},{s.ipv6}",
        )

    def kube_proxy(self, kubeconfig: Path) -> procs.Process:
        return self._component(
            "kube-proxy",
            kubeconfig,
            f"--bind-address={self.spec.ipv4}",
            "--proxy-mode=iptables",
            "--conntrack-max-per-core=0",
            f"--cluster-cidr={','.join(CLUSTER_CIDRS)}",
            "--metrics-bind-address=127.0.0.1:10249",
            "--healthz-bind-address=127.0.0.1:10256",
        )

    def _component(self, part: str, kubeconfig: Path, *flags: str) -> procs.Process:
        """Start Kubernetes binary ``part`` as this node, talking to the API server through
        ``kubeconfig``; ``flags`` are its own."""
        argv = [
            str(self.binaries[part]),
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={self.spec.name}",
            *flags,
        ]
        return self._daemon(part, argv)

    def _daemon(self, part: str, argv: Sequence[str]) -> procs.Process:
        """Start daemon ``part`` (``argv``) in the node: its cgroup, namespace and log file."""
        s = self.spec
        return procs.Process(
            f"{part}@{s.name}", in_cgroup_argv(s, part, argv), log=s.path / f"{part}.log"
        ).start()


def kill(spec: NodeSpec, *, timeout: float = 10) -> None:
    """SIGKILL every process of the node (daemons, shims, containers), as in a power cut."""

    def killed() -> set[int]:  # empty once every process is gone
        pids = cgroup_pids(spec)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    try:
        waits.until(lambda: not killed(), timeout=timeout, interval=0.05)
    except waits.TimedOut:
        pids = cgroup_pids(spec)
        raise NodeError(f"{spec.name}: processes {sorted(pids)} survive SIGKILL") from None


def _group_pids(spec: NodeSpec, part: str) -> list[int]:
    try:
        text = (tracking_hierarchy() / spec.cgroup / part / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def stop(spec: NodeSpec, *, grace: float = 5) -> None:
    """SIGTERM the node's daemons (so their connections close cleanly), then kill the rest."""
    daemons = ("kubelet", "kube-proxy", "containerd")
    for part in daemons:
        for pid in _group_pids(spec, part):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(waits.TimedOut):  # then SIGKILL
        waits.until(
            lambda: not any(_group_pids(spec, d) for d in daemons), timeout=grace, interval=0.1
        )
    kill(spec)


_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def unmount_below(directory: Path) -> list[str]:
    """Unmount everything at or below ``directory``, deepest first; return what failed."""
    failed = []
    for _ in range(3):  # a mount may appear under one just removed (propagation)
        points = mounts_below(Path("/proc/self/mountinfo").read_text(), directory)
        if not points:
            return []
        for point in points:
            if _libc.umount2(str(point).encode(), MNT_DETACH) != 0:
                err = ctypes.get_errno()
                if err not in (22, 2):  # EINVAL: not a mount (any more); ENOENT
                    failed.append(f"{point}: {os.strerror(err)}")
    return failed


def remove_cgroups(spec: NodeSpec, *, timeout: float = 10) -> list[str]:
    """rmdir the node's cgroup tree in every hierarchy, leaves first."""
    left = []
    for h in hierarchies():
        top = h / spec.cgroup
        if not top.is_dir():
            continue
        deadline = time.monotonic() + timeout  # for the whole tree
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            try:
                waits.retrying(
                    functools.partial(_rmdir, d),
                    passes=lambda exc: isinstance(exc, OSError),  # EBUSY while being reaped
                    timeout=max(0.0, deadline - time.monotonic()),
                    interval=0.05,
                )
            except OSError as exc:
                left.append(f"{d}: {exc.strerror}")
    return left


def _rmdir(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()


def remove_shared_files(spec: NodeSpec) -> None:
    """The node's entries in machine-wide directories: shim sockets and log symlinks."""
    tasks = spec.path / "containerd" / "state" / "io.containerd.runtime.v2.task"
    if tasks.is_dir():
        for ns_dir in tasks.iterdir():
            for task in ns_dir.iterdir() if ns_dir.is_dir() else ():
                with contextlib.suppress(FileNotFoundError):
                    shim_socket(spec.socket, ns_dir.name, task.name).unlink()
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(spec.dir + "/"):
                    link.unlink()
    for d in (CONTAINERD_SHIM_SOCKETS, CONTAINERD_SHIM_SOCKETS.parent):
        with contextlib.suppress(OSError):  # only when empty: other containerds may use it
            d.rmdir()


def check_no_host_kubelet(
    kubelet_dir: Path = HOST_KUBELET_DIR, device_plugins: Path = DEVICE_PLUGINS
) -> None:
    """Refuse a machine that runs a kubelet of its own: the lab's kubelets would empty its
    device-plugin directory (sockets of its device plugins) at start.

    Only what lab kubelets make there may exist: ``device-plugins/`` with the kubelet's own
    socket and checkpoint (left by an earlier lab)."""
    if not kubelet_dir.exists():
        return
    other = [p.name for p in kubelet_dir.iterdir() if p != device_plugins]
    if device_plugins.is_dir():
        other += [
            f"device-plugins/{p.name}"
            for p in device_plugins.iterdir()
            if p.name not in DEVICE_PLUGIN_FILES
        ]
    if other:
        raise NodeError(
            f"{kubelet_dir} holds {', '.join(sorted(other))}: this machine has a kubelet of its "
            "own, and the lab's kubelets would empty its device-plugin directory; run the lab "
            "on a machine without one"
        )


def remove_device_plugin_dir(
    kubelet_dir: Path = HOST_KUBELET_DIR, device_plugins: Path = DEVICE_PLUGINS
) -> None:
    """What the lab's kubelets left at their fixed paths: the device-plugin socket and
    checkpoint, and the directories (with /var/log/containers) if nothing else is in them."""
    for name in DEVICE_PLUGIN_FILES:
        (device_plugins / name).unlink(missing_ok=True)
    for d in (device_plugins, kubelet_dir):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):  # the kubelets' log links went with their nodes
        CONTAINER_LOG_LINKS.rmdir()


def teardown(spec: NodeSpec) -> list[str]:
    """Remove every trace of a node: processes, mounts, cgroups, shared files, its directory.

    Safe to call twice and after a crash; returns what could not be removed.
    """
    problems = []
    try:
        stop(spec)
    except (NodeError, OSError) as exc:
        problems.append(str(exc))
    problems += unmount_below(spec.path)
    problems += remove_cgroups(spec)
    remove_shared_files(spec)
    if not any("mount" in p or spec.dir in p for p in problems):
        shutil.rmtree(spec.path, ignore_errors=True)
    return problems


def leftovers(spec: NodeSpec) -> list[str]:
    """What of the node still exists (for ``lab status`` and the hygiene test)."""
    found = [f"process {pid}" for pid in sorted(cgroup_pids(spec))]
    found += [f"mount {p}" for p in mounts_below(Path("/proc/self/mountinfo").read_text(),
                                                 spec.path)]  # fmt: skip
    found += [f"cgroup {h / spec.cgroup}" for h in hierarchies() if (h / spec.cgroup).exists()]
    return found
