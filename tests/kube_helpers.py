"""Helpers for tests against the real API server: Services, ConfigMaps, Events, waiting."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl.lab import procs, waits

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll until ``probe()`` returns something truthy; return it. Conditions, not sleeps."""
    try:
        return waits.until(probe, timeout=timeout, interval=interval)
    except waits.TimedOut as exc:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; last: {exc.last!r}"
        ) from None


def wait_hello(
    url: str,
    curl: Callable[[], subprocess.CompletedProcess[str]],
    timeout: float,
    interval: float,
) -> str:
    """``curl()`` until the demo at ``url`` says hello; its answer. Fails with curl's error."""
    errors = [""]

    def answer() -> str:
        got = curl()
        errors[0] = got.stderr
        return got.stdout if got.returncode == 0 and "hello" in got.stdout else ""

    try:
        return wait_for(f"{url} to answer", answer, timeout=timeout, interval=interval)
    except AssertionError:
        raise AssertionError(f"{url}: {errors[0]}") from None


def service(
    name: str,
    *,
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations, labels=labels),
        spec=client.V1ServiceSpec(
            type=spec.pop("type", "LoadBalancer"),
            ports=[
                client.V1ServicePort(name=f"p{i}", protocol=proto, port=port)
                for i, (proto, port) in enumerate(ports)
            ],
            **spec,
        ),
    )


def ingress(core: client.CoreV1Api, ns: str, name: str) -> list[str]:
    svc = core.read_namespaced_service(name, ns)
    return [i.ip for i in (svc.status.load_balancer.ingress or [])]


def events(
    core: client.CoreV1Api, ns: str, name: str, kind: str = "Service"
) -> list[tuple[str, str, str]]:
    found = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in found if e.involved_object.kind == kind]


def put_config(core: client.CoreV1Api, ns: str, text: str, name: str = "lbctl-config") -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"config.yaml": text})
    try:
        core.replace_namespaced_config_map(name, ns, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_config_map(ns, body)


def metrics(port: int) -> dict[str, float]:
    """The controller's metrics as ``{"name{labels}": value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def probe(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def controller_argv(
    kubeconfig: Path,
    namespace: str,
    identity: str,
    metrics_port: int,
    *,
    lease: tuple[int, float, float] = (2, 1.5, 0.25),
    extra: Sequence[str] = (),
) -> list[str]:
    """``lbctl controller`` with test timings: lease duration, renew deadline, retry period."""
    return [
        sys.executable,
        "-m",
        "lbctl",
        "controller",
        f"--kubeconfig={kubeconfig}",
        f"--namespace={namespace}",
        f"--identity={identity}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        f"--lease-duration={lease[0]}",
        f"--renew-deadline={lease[1]}",
        f"--retry-period={lease[2]}",
        "--log-level=debug",
        *extra,
    ]


class ControllerProcess:
    """``lbctl controller`` as a real child process."""

    def __init__(self, proc: procs.Process, port: int, identity: str) -> None:
        self.proc, self.port, self.identity = proc, port, identity

    def metric(self, name: str) -> float:
        return metrics(self.port).get(name, 0.0)

    def writes(self, kind: str | None = None) -> float:
        """API writes so far; of one ``kind`` (status, metadata, fence, event) if given."""
        name = f'lbctl_api_writes_total{{kind="{kind}"}}' if kind else "lbctl_api_writes_total"
        return sum(v for k, v in metrics(self.port).items() if k.startswith(name))

    def ready(self) -> bool:
        return probe(self.port, "/readyz") == 200


def lbctl_check(kubeconfig: Path | str, ns: str, *ignore: str) -> tuple[int, list[dict[str, str]]]:
    """``lbctl check -o json`` for the pools and speaker Leases in ``ns``: (exit, findings)."""
    out = subprocess.run(
        [sys.executable, "-m", "lbctl", "check", f"--kubeconfig={kubeconfig}",
         f"--namespace={ns}", "-o", "json", *(f"--ignore={kind}" for kind in ignore)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def check_findings(kubeconfig: Path | str, ns: str, *ignore: str) -> list[tuple[str, str]]:
    """The findings of ``lbctl check`` as sorted (kind, subject) pairs."""
    return sorted((f["kind"], f["subject"]) for f in lbctl_check(kubeconfig, ns, *ignore)[1])
