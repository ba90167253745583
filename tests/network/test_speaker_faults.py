"""Speakers through an API server outage and an etcd compaction: they recover on their own."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable

from kube_helpers import put_config, wait_for
from kubernetes import client, config
from speaker_helpers import SpeakerLan

from lbctl.lab import controlplane, lan, plan


def bump_etcd(cp: controlplane.ControlPlane, times: int = 5) -> None:
    """Writes no informer watches, so every watch's resourceVersion falls behind etcd's."""
    for i in range(times):
        body = {
            "key": base64.b64encode(f"/lbctl-test/bump{i}".encode()).decode(),
            "value": base64.b64encode(b"x").decode(),
        }
        req = urllib.request.Request(
            f"{cp.etcd_url}/v3/kv/put", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10):
            pass


def test_speakers_ride_out_an_api_server_restart_and_a_compaction(
    planes: Callable[..., controlplane.ControlPlane],
    make_lan: Callable[..., lan.Lan],
) -> None:
    # Watches straight to etcd, so the compaction shows through as 410 Gone on resuming.
    cp = planes(
        bind_address="0.0.0.0",
        extra_sans=plan.candidate_gateways(),
        apiserver_args=["--watch-cache=false"],
    )
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        ns = "speakers"
        core.create_namespace({"metadata": {"name": ns}})
        hosts = ["node1", "node2", "node3"]
        the_lan = make_lan([*hosts, "client"])
        kubeconfig = cp.write_kubeconfig(
            the_lan.workdir / "node.kubeconfig", host=str(the_lan.plan.gateway4)
        )
        sl = SpeakerLan(the_lan, core, ns, str(kubeconfig), hosts)
        for host in hosts:
            core.create_node({"metadata": {"name": sl.node_name(host)}})
        put_config(core, ns, sl.pool())
        sl.start_all()
        ip = sl.ip4(205)
        owner = sl.expected_owner(ip)
        sl.lb_service("web", [ip])
        wait_for("the owner alone", lambda: sl.arp_replies(ip, 1) == {sl.mac(owner)})
        pids = {h: p.pid for h, p in sl.speakers.items()}
        ran_out = "announcing nothing: our Lease is not fresh"
        before = sl.speakers[owner].tail(100_000).count(ran_out)

        cp.stop_apiserver()
        bump_etcd(cp)
        cp.compact_etcd()
        # Nobody can renew a Lease: every speaker falls silent once its own has run out,
        # rather than risk answering beside a node the others think alive.
        wait_for(
            "the owner's Lease to run out",
            lambda: sl.speakers[owner].tail(100_000).count(ran_out) > before,
            timeout=10,
        )
        wait_for("silence", lambda: sl.arp_replies(ip, 2) == set(), timeout=10)

        cp.start_apiserver()
        wait_for("the owner back, alone", lambda: sl.arp_replies(ip, 2) == {sl.mac(owner)}, 30)
        # Converged on what happens after the outage too: a new Service is announced.
        ip2 = sl.ip4(206)
        sl.lb_service("web2", [ip2])
        owner2 = sl.expected_owner(ip2)
        wait_for("the new one", lambda: sl.arp_replies(ip2, 2) == {sl.mac(owner2)}, timeout=20)
        assert {h: p.pid for h, p in sl.speakers.items()} == pids  # nobody restarted
        assert all(p.alive() for p in sl.speakers.values())
        logs = "".join(p.tail(100_000) for p in sl.speakers.values())
        assert "watch expired (410 Gone); relisting" in logs
        assert sl.check() == []
        for proc in sl.speakers.values():
            proc.stop(timeout=5)
    finally:
        api.close()
