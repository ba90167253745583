"""Fixtures for controller tests: ``run_controller`` starts ``lbctl controller`` processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kube_helpers import ControllerProcess, controller_argv, wait_for
from kubernetes import client

from lbctl.lab import controlplane, procs


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def run_controller(
    apiserver: controlplane.ControlPlane,
    namespace: str,
    tmp_path: Path,
    core: client.CoreV1Api,
) -> Iterator[Callable[..., ControllerProcess]]:
    """Start controllers for this test's namespace; at the end, the test's Services are
    deleted while a controller still runs (so finalizers go), then every process stops."""
    started: list[ControllerProcess] = []

    def start(
        identity: str = "ctl-a",
        *,
        lease: tuple[int, float, float] = (2, 1.5, 0.25),
        extra: tuple[str, ...] = (),
        wait_ready: bool = True,
    ) -> ControllerProcess:
        port = procs.free_port()
        argv = controller_argv(
            apiserver.kubeconfig, namespace, identity, port, lease=lease, extra=extra
        )
        proc = procs.Process(
            f"controller-{identity}",
            argv,
            log=tmp_path / f"controller-{identity}-{len(started)}.log",
        )
        ctl = ControllerProcess(proc.start(), port, identity)
        started.append(ctl)
        if wait_ready:
            wait_for(f"{identity} to serve /readyz", lambda: ctl.proc.check_alive() or ctl.ready())
        return ctl

    try:
        yield start
    finally:
        try:
            if any(c.proc.alive() for c in started):
                for svc in core.list_namespaced_service(namespace).items:
                    # Raw: 1.20 answers a Service delete with a Status the client can't read.
                    core.delete_namespaced_service(
                        svc.metadata.name, namespace, _preload_content=False
                    )
                wait_for(
                    "the test's Services to be deleted",
                    lambda: not core.list_namespaced_service(namespace).items,
                    timeout=15,
                )
        finally:
            for ctl in started:
                ctl.proc.stop()
