"""Real nodes, the pure half: plans, configuration files, and how teardown finds what to remove."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from lbctl.lab import nodes

HOSTS = [
    ("node1", "r11-node1", "198.51.100.10", "2001:db8:100::10"),
    ("node2", "r11-node2", "198.51.100.11", "2001:db8:100::11"),
    ("node3", "r11-node3", "198.51.100.12", "2001:db8:100::12"),
]


def specs() -> list[nodes.NodeSpec]:
    return nodes.plan_nodes("r11", HOSTS, Path("/tmp/lab/nodes"))


def test_each_node_gets_its_own_pod_cidrs_cgroup_and_directory() -> None:
    one, two, three = specs()
    assert one.pod_cidrs == ("10.244.1.0/24", "fd00:10:244:1::/64")
    assert three.pod_cidrs == ("10.244.3.0/24", "fd00:10:244:3::/64")
    assert [s.cgroup for s in (one, two, three)] == ["r11-node1", "r11-node2", "r11-node3"]
    assert two.socket == Path("/tmp/lab/nodes/node2/containerd.sock")


def test_a_lab_directory_too_long_for_unix_sockets_is_refused() -> None:
    with pytest.raises(nodes.NodeError, match="too long"):
        nodes.plan_nodes("r11", HOSTS, Path("/tmp/" + "x" * 60))


@pytest.mark.parametrize("index", [0, 256])
def test_pod_cidrs_exist_for_255_nodes_only(index: int) -> None:
    with pytest.raises(nodes.NodeError):
        nodes.pod_cidrs(index)


def test_containerd_config_keeps_every_path_inside_the_node() -> None:
    spec = specs()[0]
    cfg = tomllib.loads(nodes.containerd_config(spec, "registry.k8s.io/pause:3.10.1"))
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert cfg["root"].startswith(spec.dir + "/")
    assert cfg["state"].startswith(spec.dir + "/")
    assert cfg["grpc"]["address"] == str(spec.socket)
    assert runc["Root"].startswith(spec.dir + "/")  # not the shared /run/containerd/runc
    assert runc["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": spec.dir + "/cni/net.d"}
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"


def test_the_kubelet_uses_cgroupfs_its_own_root_and_no_negative_oom_score() -> None:
    spec = specs()[1]
    cfg = nodes.kubelet_config(spec, ca_file=Path("/ca.crt"))
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["cgroupRoot"] == "/r11-node2"
    assert cfg["oomScoreAdj"] >= 0
    assert cfg["containerRuntimeEndpoint"] == f"unix://{spec.socket}"
    assert cfg["podLogsDir"].startswith(spec.dir + "/")
    assert cfg["address"] == "198.51.100.11"


def test_the_pod_network_is_dual_stack_on_the_node_cidrs() -> None:
    spec = specs()[2]
    bridge = nodes.cni_config(spec)["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [
        [{"subnet": "10.244.3.0/24"}],
        [{"subnet": "fd00:10:244:3::/64"}],
    ]
    assert bridge["ipam"]["dataDir"].startswith(spec.dir + "/")


def test_each_node_routes_to_the_others_pods_and_masquerades_leaving_traffic() -> None:
    one, two, three = specs()
    cmds = nodes.network_commands(one, [one, two, three])
    assert ["ip", "route", "replace", "10.244.2.0/24", "via", "198.51.100.11"] in cmds
    assert ["ip", "-6", "route", "replace", "fd00:10:244:3::/64", "via", "2001:db8:100::12"] in cmds
    assert not any("10.244.1.0/24" in c for c in cmds)  # its own range is on cni0
    nat = [c for c in cmds if "MASQUERADE" in c]
    assert [c[0] for c in nat] == ["iptables", "ip6tables"]
    assert nat[0][nat[0].index("-s") + 1] == "10.244.0.0/16"


def test_shim_sockets_are_found_by_containerd_address_namespace_and_id() -> None:
    # As observed here with containerd 1.6.20: /run/containerd/s/<sha256 of this string>.
    address = Path("/tmp/r11/m/node1/containerd.sock")
    cid = "e49979324af1fac1f009eb81ea6b4f1bc42f60fa7800a5d67559f83af4c74c21"
    want = hashlib.sha256(f"{address}/k8s.io/{cid}".encode()).hexdigest()
    assert nodes.shim_socket(address, "k8s.io", cid) == Path("/run/containerd/s") / want


MOUNTINFO = """\
36 25 0:31 / /run/netns/r11-node1 rw shared:5 - nsfs nsfs rw
40 25 254:0 /tmp/lab/nodes/node1/kubelet /tmp/lab/nodes/node1/kubelet rw shared:9 - ext4 /dev/vda rw
41 40 0:40 / /tmp/lab/nodes/node1/kubelet/pods/u/volumes/token rw - tmpfs tmpfs rw
42 25 0:41 / /tmp/lab/nodes/node1/containerd/state/cri/netns/cni-1 rw - nsfs nsfs rw
43 25 0:42 / /tmp/lab/nodes/node10/x rw - tmpfs tmpfs rw
44 25 0:43 / /tmp/lab/nodes/node1/with\\040space rw - tmpfs tmpfs rw
"""


def test_teardown_unmounts_below_the_node_deepest_first_and_nothing_else() -> None:
    # Equal depth: the newer mount first (it may sit on the older one).
    got = nodes.mounts_below(MOUNTINFO, Path("/tmp/lab/nodes/node1"))
    assert got == [
        Path("/tmp/lab/nodes/node1/containerd/state/cri/netns/cni-1"),
        Path("/tmp/lab/nodes/node1/kubelet/pods/u/volumes/token"),
        Path("/tmp/lab/nodes/node1/with space"),
        Path("/tmp/lab/nodes/node1/kubelet"),
    ]


def test_a_machine_with_its_own_kubelet_is_refused_and_lab_leftovers_are_not(
    tmp_path: Path,
) -> None:
    kubelet, plugins = tmp_path / "kubelet", tmp_path / "kubelet" / "device-plugins"
    nodes.check_no_host_kubelet(kubelet, plugins)  # nothing there
    plugins.mkdir(parents=True)
    (plugins / "kubelet.sock").touch()
    (plugins / "kubelet_internal_checkpoint").touch()
    nodes.check_no_host_kubelet(kubelet, plugins)  # what an earlier lab left
    (plugins / "nvidia.sock").touch()
    with pytest.raises(nodes.NodeError, match=r"device-plugins/nvidia\.sock"):
        nodes.check_no_host_kubelet(kubelet, plugins)
    (plugins / "nvidia.sock").unlink()
    (kubelet / "pods").mkdir()
    with pytest.raises(nodes.NodeError, match="kubelet of its own"):
        nodes.check_no_host_kubelet(kubelet, plugins)
    (kubelet / "pods").rmdir()
    nodes.remove_device_plugin_dir(kubelet, plugins)
    assert not kubelet.exists()
