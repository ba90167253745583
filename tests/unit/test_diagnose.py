"""One cluster view, judged by ``lbctl status`` and ``lbctl check`` alike."""

from __future__ import annotations

import datetime

import pytest

from lbctl import audit, diagnose, objects
from lbctl.kube import cluster
from lbctl.leases import LeaseState

CONFIG = {"config.yaml": "pools:\n  - name: lan\n    addresses: [198.51.100.10-198.51.100.11]\n"}


def svc(name: str, ip: str | None = None) -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "demo",
            "name": name,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "ipFamilies": ["IPv4"]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
    }


def node(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def view(services: list[dict[str, object]], leases: dict[str, LeaseState]) -> diagnose.ClusterView:
    return diagnose.ClusterView(
        services=services,
        nodes=[node("n1"), node("n2")],
        config_data=CONFIG,
        leases=leases,
        slices=[],
        handling=objects.Handling(),
        conflicts={},
    )


@pytest.mark.parametrize(
    ("says", "services", "leases", "state", "announcer", "kinds"),
    [
        (
            "a Service holding its address, announced by a live speaker: ok everywhere",
            [svc("web", "198.51.100.10")],
            {"n1": LeaseState.LIVE},
            "ok",
            "n1",
            [],
        ),
        (
            "no live speaker: status shows nobody, check says why",
            [svc("web", "198.51.100.10")],
            {"n1": LeaseState.EXPIRED},
            "ok",
            "<nobody: no live, eligible speaker",
            [audit.Kind.SPEAKER_DOWN, audit.Kind.NO_LIVE_SPEAKER],
        ),
        (
            "a Service the rules give an address it lacks: stale in status and in check",
            [svc("web")],
            {"n1": LeaseState.LIVE},
            "stale",
            None,
            [audit.Kind.STALE],
        ),
    ],
)
def test_status_and_check_judge_one_view(
    says: str,
    services: list[dict[str, object]],
    leases: dict[str, LeaseState],
    state: str,
    announcer: str | None,
    kinds: list[audit.Kind],
) -> None:
    v = view(services, leases)
    [row] = diagnose.status_report(v).services
    assert row.state == state, says
    if announcer is None:
        assert row.announced_by == [], says
    else:
        [by] = row.announced_by
        assert by.startswith(announcer), says
    assert [f.kind for f in diagnose.findings(v)] == kinds, says


@pytest.mark.parametrize(
    ("says", "headers", "server_clock"),
    [
        ("the server's Date header is its clock", {"Date": "Thu, 01 Jan 2026 00:00:00 GMT"}, True),
        ("no Date header: our own clock", {}, False),
        ("an unreadable Date header: our own clock", {"Date": "soon"}, False),
    ],
)
def test_leases_are_judged_by_the_server_clock(
    says: str, headers: dict[str, str], server_clock: bool
) -> None:
    got = cluster.server_now(headers)
    server = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert (got == server) is server_clock, says
