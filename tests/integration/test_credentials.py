"""The client reaches the real API server through --kubeconfig and through KUBECONFIG, and says
once, not on every request, when it does not verify the server."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from kube_helpers import controller_argv, metrics, probe, wait_for
from kubernetes import client

from lbctl.kube import client as kclient
from lbctl.lab import controlplane, procs


def test_kubeconfig_flag(apiserver: controlplane.ControlPlane) -> None:
    api, choice = kclient.api_client(str(apiserver.kubeconfig))
    with api:
        assert choice.source is kclient.Source.FLAG
        assert client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_a_watch_connection_is_probed_with_tcp_keepalive(
    apiserver: controlplane.ControlPlane, namespace: str
) -> None:
    # A watch only reads: keepalive probes are what notice a dead path or a lost RST.
    api, _ = kclient.api_client(str(apiserver.kubeconfig))
    with api:
        response = client.CoreV1Api(api).list_namespaced_service(
            namespace, watch=True, timeout_seconds=5, _preload_content=False
        )
        try:
            sock = response.connection.sock
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # urllib3's own
        finally:
            response.release_conn()


def test_kubeconfig_environment_variable(
    apiserver: controlplane.ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(apiserver.kubeconfig))
    api, choice = kclient.api_client(None)
    with api:
        assert choice.source is kclient.Source.ENV
        assert client.CoreV1Api(api).list_namespace().items


def test_an_unverified_api_server_is_said_once_not_on_every_request(
    apiserver: controlplane.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    # The admin token, and insecure-skip-tls-verify instead of the CA, as some homelabs do.
    text = apiserver.kubeconfig.read_text()
    insecure = tmp_path / "insecure.kubeconfig"
    insecure.write_text(
        text.replace(f"    certificate-authority: {apiserver.ca_file}\n",
                     "    insecure-skip-tls-verify: true\n")
    )  # fmt: skip
    assert "insecure-skip-tls-verify: true" in insecure.read_text()
    port = procs.free_port()
    ctl = procs.Process(
        "controller",
        controller_argv(insecure, namespace, "ctl-insecure", port, extra=("--log-format=json",)),
        log=tmp_path / "controller.log",
    ).start()
    try:
        # Leading means a Lease renewal every 0.25 s: dozens of requests in a few seconds.
        wait_for(
            "the controller to lead",
            lambda: probe(port, "/healthz") == 200 and metrics(port).get("lbctl_leader") == 1,
        )
        renewals_at = time.monotonic()
        wait_for("a few seconds of renewals", lambda: time.monotonic() - renewals_at > 3)
    finally:
        ctl.stop()
    log = ctl.log.read_text()
    assert "InsecureRequestWarning" not in log
    said = [json.loads(line) for line in log.splitlines() if "TLS verification" in line]
    assert len(said) == 1 and said[0]["level"] == "warning", said
    assert str(insecure) in said[0]["message"]
