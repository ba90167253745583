"""Shared fixtures: a real control plane, a real LAN of namespaces, the real controller
(``run_controller``), markers by folder.

Tests under tests/unit get the ``unit`` marker, tests/integration ``integration``, and so on.
Where a real part cannot exist (not root, no binaries), tests skip with the reason; under
CI=true they fail instead, because CI must run everything.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from kube_helpers import ControllerProcess, controller_argv, wait_for
from kubernetes import client, config

from lbctl.lab import assets, controlplane, lan, plan, procs

TESTS = Path(__file__).parent

# Shared, noisy machines: property tests assert behaviour, never a per-example time limit.
hypothesis.settings.register_profile("lbctl", deadline=None)
hypothesis.settings.load_profile("lbctl")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
lan.keep_with_this_process()  # a killed run's LANs and labs go with the next run's first LAN
procs.exit_on_sigterm(interrupt=True)  # a run stopped with SIGTERM still removes what it made


def missing(reason: str) -> None:
    """Skip a test whose real part is missing here; in CI that is a failure."""
    if IN_CI:
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def full_counts() -> bool:
    """Whether slow tests run at full size (LBCTL_FULL=1); CI runs them with reduced counts."""
    return os.environ.get("LBCTL_FULL") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            kind = Path(str(item.path)).relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if kind in ("unit", "integration", "network", "e2e"):
            item.add_marker(kind)


_PART_SECONDS: dict[str, float] = {}


def _part(nodeid: str) -> str:
    """The part of the suite a test belongs to: its folder, and for e2e its file."""
    parts = nodeid.split("::")[0].split("/")
    if len(parts) >= 3 and parts[0] == "tests":
        return "/".join(parts[1:3]) if parts[1] == "e2e" else parts[1]
    return parts[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    part = _part(report.nodeid)
    _PART_SECONDS[part] = _PART_SECONDS.get(part, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how long each part of the suite took (setup, call and teardown of its tests)."""
    if not _PART_SECONDS:
        return
    terminalreporter.section("time per part")
    for part, seconds in sorted(_PART_SECONDS.items()):
        terminalreporter.write_line(f"{part:<40} {seconds:8.1f} s")
    terminalreporter.write_line(f"{'all':<40} {sum(_PART_SECONDS.values()):8.1f} s")


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    try:
        return assets.ensure(assets.ALL)
    except assets.AssetError as exc:
        missing(f"control-plane binaries unavailable: {exc}")
        raise AssertionError("unreachable") from exc


@pytest.fixture(scope="session")
def helm() -> Path:
    """The real helm (v3), built once from the Go module proxy like the control plane."""
    try:
        return assets.ensure([assets.HELM])[assets.HELM]
    except assets.AssetError as exc:
        missing(f"helm unavailable: {exc}")
        raise AssertionError("unreachable") from exc


def _debian_tool(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not installed (Debian package prometheus; scripts/setup.sh installs it)")
        raise AssertionError("unreachable")
    return Path(found)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _debian_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_server() -> Path:
    """A real Prometheus (Debian's), for tests that scrape the lab."""
    return _debian_tool("prometheus")


@pytest.fixture(scope="session")
def netns_privileges() -> None:
    """Root and network namespaces, for fixtures that build a LAN once for many tests."""
    reason = lan.missing_privileges()
    if reason:
        missing(reason)


@pytest.fixture(scope="session")
def apiserver(
    binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[controlplane.ControlPlane]:
    """etcd + kube-apiserver for the whole session, reachable from LAN namespaces as root."""
    as_root = os.geteuid() == 0
    cp = controlplane.ControlPlane(
        workdir=tmp_path_factory.mktemp("controlplane"),
        binaries=binaries,
        # Node namespaces reach the API server through the lab bridge's gateway address.
        bind_address="0.0.0.0" if as_root else "127.0.0.1",
        extra_sans=plan.candidate_gateways(),
    )
    cp.start(controller_manager=True)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def planes(
    binaries: dict[str, Path], tmp_path: Path
) -> Iterator[Callable[..., controlplane.ControlPlane]]:
    """``planes(**kwargs)`` starts a ControlPlane of the test's own (to stop, restart or
    compact without disturbing the session's); all stop afterwards."""
    made: list[controlplane.ControlPlane] = []

    def make(**kwargs: Any) -> controlplane.ControlPlane:
        cp = controlplane.ControlPlane(
            workdir=tmp_path / f"plane{len(made)}", binaries=binaries, **kwargs
        )
        made.append(cp)
        return cp.start()

    try:
        yield make
    finally:
        for cp in made:
            cp.stop()


@pytest.fixture(scope="session")
def api_client(apiserver: controlplane.ControlPlane) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh Kubernetes namespace per test, deleted afterwards."""
    core = client.CoreV1Api(api_client)
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{secrets.token_hex(3)}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        # Services go at once (namespace deletion is slow), so the next test's controller
        # never sees this test's LoadBalancers. Raw: 1.20 answers with a Status.
        for svc in core.list_namespaced_service(name).items:
            core.delete_namespaced_service(svc.metadata.name, name, _preload_content=False)
        core.delete_namespace(name)


@pytest.fixture
def make_lan(tmp_path: Path) -> Iterator[Callable[..., lan.Lan]]:
    """``make_lan(["node1", "client"])`` builds a LAN; all of it is removed after the test."""
    reason = lan.missing_privileges()
    if reason:
        missing(reason)
    made: list[lan.Lan] = []

    def factory(names: Sequence[str] = ("node1", "node2", "client")) -> lan.Lan:
        the_lan = lan.create(names, tmp_path / f"lan{len(made)}")
        made.append(the_lan)
        return the_lan

    try:
        yield factory
    finally:
        for the_lan in made:
            the_lan.destroy()


# Tests that fail on purpose run only inside tests/network/test_hygiene.py.
collect_ignore_glob = [] if os.environ.get("LBCTL_SELFTEST") else ["selftest/*"]


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
