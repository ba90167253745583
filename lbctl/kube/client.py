"""Which cluster credentials to use, and an API client built from them (I/O at the edge)."""

from __future__ import annotations

import enum
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client, config

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


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
    if choice.source is Source.IN_CLUSTER:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        api = client.ApiClient(cfg)
    else:
        # The client merges a colon-separated KUBECONFIG list itself.
        api = config.new_client_from_config(config_file=choice.path)
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
