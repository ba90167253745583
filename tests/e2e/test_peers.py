"""MetalLB in the real-node lab: built from the Go module proxy, installed from its own
manifest (webhooks off) in place of lbctl, it gives the demo Service an address that answers
from the client. What bench/peers.py measures rests on this.

Costs a real-node lab (a few minutes, with the images and MetalLB cached: a cold MetalLB
build adds minutes; ``lbctl binaries`` and one ``bench/peers.py`` run warm the caches).
"""

from __future__ import annotations

import ipaddress
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import missing
from kubernetes import client, config

from lbctl.lab import failover, lan, metallb
from lbctl.lab import lab as lab_mod


@pytest.fixture(scope="module")
def metallb_lab() -> Iterator[tuple[lab_mod.Lab, metallb.Built, str]]:
    if lan.missing_privileges():
        missing(str(lan.missing_privileges()))
    for tool in ("containerd", "runc", "buildah", "mmdebstrap"):
        if not Path(f"/usr/bin/{tool}").exists() and not Path(f"/usr/sbin/{tool}").exists():
            missing(f"{tool} is not installed (apt-get install {tool})")
    built = metallb.build(say=lambda _: None)  # before the LAN is held: a build is long
    directory = Path(tempfile.mkdtemp(prefix="lbctl-e2e-", dir="/tmp"))  # short: sockets
    the_lab = lab_mod.Lab(directory / "lab", say=lambda _: None)
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LBCTL_LAB_PREFIX", "mp" + secrets.token_hex(2))
        try:
            the_lab.up()
            address = metallb.replace_lbctl(the_lab, built, say=print)
            print(f"lab up and MetalLB in its place in {time.monotonic() - started:.0f} s")
            yield the_lab, built, address
        finally:
            the_lab.down(quiet=True)
            if directory.exists() and not any(directory.iterdir()):
                directory.rmdir()


def test_metallb_gives_the_demo_an_address_that_answers_from_the_client(
    metallb_lab: tuple[lab_mod.Lab, metallb.Built, str],
) -> None:
    the_lab, built, address = metallb_lab
    state = the_lab.state()
    assert state is not None
    net = state.lan_plan().subnet4
    assert net[200] <= ipaddress.ip_address(address) <= net[250]  # the lab's range
    the_lan = the_lab.lan()
    deadline = time.monotonic() + 60
    while True:
        got = the_lan.run("client", ["curl", "-sS", "--max-time", "2", f"http://{address}/"],
                          check=False)  # fmt: skip
        if got.returncode == 0 and "hello" in got.stdout:
            break
        assert time.monotonic() < deadline, got.stderr
        time.sleep(0.5)
    node_macs = {the_lan.host(n).mac for n in lab_mod.NODES}
    answering = failover.arp_macs(the_lan, address)
    assert len(answering) == 1 and answering <= node_macs  # one node, layer 2
    with config.new_client_from_config(config_file=state.kubeconfig) as api:
        core = client.CoreV1Api(api)
        assert not core.list_namespaced_pod("lbctl-system").items  # lbctl is gone
        pods = core.list_namespaced_pod(metallb.NAMESPACE).items
    images = {c.image for p in pods for c in p.spec.containers}
    assert images == set(metallb.image_names(built.version).values())
    speakers = [p for p in pods if p.metadata.labels.get("component") == "speaker"]
    assert {p.spec.node_name for p in speakers} == set(lab_mod.NODES)
    assert all(p.spec.host_network for p in speakers)
