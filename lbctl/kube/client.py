"""Which cluster credentials to use, and an API client built from them (I/O at the edge)."""

from __future__ import annotations

import enum
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client, config

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

# TCP keepalive on every connection to the API server: probe after 10 s idle, every 5 s, give
# up after 3 unanswered (25 s). A watch only reads, so without probes a connection whose path
# died (a node cut off, then back) or whose RST was lost is noticed only by the read timeout,
# minutes later: the leader kept its Lease on a fresh connection while its Service watch sat
# dead. client-go dials with a 30 s keepalive; we want the watch back sooner.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES = 10, 5, 3


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """urllib3's own defaults (no Nagle) plus TCP keepalive with the timings above (Linux
    names; an option this platform lacks is left out)."""
    options = list(urllib3.connection.HTTPConnection.default_socket_options)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


class Source(enum.Enum):
    FLAG = "--kubeconfig"
    ENV = "$KUBECONFIG"
    IN_CLUSTER = "in-cluster service account"
    HOME = "~/.kube/config"


@dataclass(frozen=True)
class Choice:
    source: Source
    path: str | None


class NoCredentials(RuntimeError):
    """Nothing says how to reach a cluster."""


def choose(
    flag: str | None, env: Mapping[str, str], *, in_cluster: bool, home_config: Path
) -> Choice:
    """The same order as kubectl and controller-runtime: flag, KUBECONFIG, in-cluster, home."""
    if flag:
        return Choice(Source.FLAG, flag)
    if env.get("KUBECONFIG"):
        return Choice(Source.ENV, env["KUBECONFIG"])
    if in_cluster:
        return Choice(Source.IN_CLUSTER, None)
    if home_config.exists():
        return Choice(Source.HOME, str(home_config))
    raise NoCredentials(
        "no cluster credentials: pass --kubeconfig, set KUBECONFIG, run in a Pod, "
        "or create ~/.kube/config"
    )


def api_client(kubeconfig: str | None = None) -> tuple[client.ApiClient, Choice]:
    """An API client and where its credentials came from."""
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN.exists()
    choice = choose(
        kubeconfig, os.environ, in_cluster=in_cluster, home_config=Path.home() / ".kube" / "config"
    )
    cfg = client.Configuration()
    if choice.source is Source.IN_CLUSTER:
        config.load_incluster_config(client_configuration=cfg)
    else:
        # The client merges a colon-separated KUBECONFIG list itself.
        config.load_kube_config(config_file=choice.path, client_configuration=cfg)
    cfg.socket_options = keepalive_socket_options()  # read when the ApiClient makes its pool
    api = client.ApiClient(cfg)
    warn_once_if_unverified(api.configuration.verify_ssl, choice)
    return api, choice


def warn_once_if_unverified(verify: bool, choice: Choice) -> bool:
    """Say once, at start, that TLS is not verified (``insecure-skip-tls-verify``), and keep
    urllib3 from repeating it on every request (a speaker makes several a second).

    Returns whether the warning was given."""
    if verify:
        return False
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    log.warning(
        "TLS verification of the API server is off (insecure-skip-tls-verify in %s): anyone "
        "on the path can impersonate it; give the kubeconfig its CA instead",
        choice.path or choice.source.value,
    )
    return True
