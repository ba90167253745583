"""The client reaches the real API server through --kubeconfig and through KUBECONFIG."""

from __future__ import annotations

import pytest
from kubernetes import client

from lbctl.kube import client as kclient
from lbctl.lab import controlplane


def test_kubeconfig_flag(apiserver: controlplane.ControlPlane) -> None:
    api, choice = kclient.api_client(str(apiserver.kubeconfig))
    with api:
        assert choice.source is kclient.Source.FLAG
        assert client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_kubeconfig_environment_variable(
    apiserver: controlplane.ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(apiserver.kubeconfig))
    api, choice = kclient.api_client(None)
    with api:
        assert choice.source is kclient.Source.ENV
        assert client.CoreV1Api(api).list_namespace().items
