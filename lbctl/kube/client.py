"""Which cluster credentials to use, and an API client built from them (I/O at the edge)."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

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
        return client.ApiClient(cfg), choice
    # The client merges a colon-separated KUBECONFIG list itself.
    return config.new_client_from_config(config_file=choice.path), choice
