"""lbctl status: the rule that applies to each Service, and pool usage."""

from __future__ import annotations

from typing import Any

import pytest
from status_helpers import build

from lbctl import config, objects, ownership, status


def svc(name: str, ip: str | None = None, age: int = 0, **ann: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": ann,
            "creationTimestamp": f"2026-01-01T00:00:{age:02d}Z",
        },
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
    }


CONFIG = {"config.yaml": "pools: [{name: lan, addresses: [198.51.100.1-198.51.100.2]}]"}


def test_rows_say_ok_pending_with_reason_and_pool_usage() -> None:
    report = build(
        [
            svc("a", "198.51.100.1"),
            svc("b", "198.51.100.2", 1),
            svc("c", age=2),
            {"metadata": {"name": "x", "namespace": "default"}, "spec": {"type": "ClusterIP"}},
        ],
        CONFIG,
    )
    rows = {r.service: r for r in report.services}
    assert set(rows) == {"default/a", "default/b", "default/c"}
    assert rows["default/a"].state == "ok" and rows["default/a"].pool == "lan"
    assert rows["default/c"].state == "pending"
    assert "no free IPv4 address in pool(s) lan" in rows["default/c"].reason
    assert [(p.pool, p.size, p.used, p.free) for p in report.pools] == [("lan", 2, 2, 0)]
    text = status.render(report)
    assert "<pending>" in text and "POOL  FAMILY  SIZE  USED  FREE" in text


def test_a_status_the_rules_disagree_with_is_stale() -> None:
    report = build([svc("a", "203.0.113.5")], CONFIG)
    assert report.services[0].state == "stale"


def test_a_config_error_is_shown() -> None:
    report = build([svc("a")], {"config.yaml": "pools: nope"})
    assert report.config_error and "pools: Input should be a valid list" in report.config_error
    assert '"config_error"' in status.render(report, "json")


def node(name: str, **conditions: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": t, "status": v} for t, v in conditions.items()]},
    }


def test_status_shows_why_each_node_may_not_announce() -> None:
    nodes = [
        node("n1"),
        node("n2", NetworkUnavailable="True"),
        node("n3"),
        node("n4", Ready="False"),
    ]

    def view(objs: list[Any], cfg: config.PoolConfig) -> ownership.Ownership:
        return ownership.compute(
            cfg,
            service_objs=objs,
            node_objs=nodes,
            slice_objs=[],
            live={"n1", "n2", "n4", "gone"},
            handling=objects.Handling(),
        )

    report = build([svc("a", "198.51.100.1")], CONFIG, nodes, speaker_view=view)
    why = {n.node: (n.eligible, n.reason) for n in report.nodes}
    assert why == {
        "n1": (True, ""),
        "n2": (False, "condition NetworkUnavailable is True"),
        "n3": (False, "no live speaker"),
        "n4": (True, ""),  # NotReady: its live speaker is what counts
        "gone": (False, "no Node object"),
    }
    assert report.services[0].announced_by[0] in ("n1", "n4")
    text = status.render(report)
    assert "NODE  ANNOUNCES  WHY NOT" in text
    assert "n2    no         condition NetworkUnavailable is True" in text


# --- reservations ------------------------------------------------------------------------

RESERVING = {
    "config.yaml": """
pools:
  - {name: lan, addresses: [198.51.100.1-198.51.100.8, "2001:db8::/126"]}
  - {name: team, addresses: [203.0.113.1-203.0.113.2], namespaces: [team-a]}
reservations:
  - {address: 198.51.100.5, service: default/web}
  - {address: 198.51.100.6, service: default/gone}
  - {address: 198.51.100.7, service: default/old-and-new}
  - {address: 198.51.100.8, service: default/pinned}
  - {address: "2001:db8::3", service: default/web}
  - {address: 203.0.113.2, service: default/outsider}
""",
}


def reservation_report() -> status.Report:
    return build(
        [
            svc("web", "198.51.100.5"),
            svc("old", "198.51.100.7", 1),  # held it before the reservation was written
            svc("old-and-new", age=2),
            svc("pinned", "198.51.100.1", 3, **{"lbctl.io/loadBalancerIPs": "198.51.100.1"}),
            svc("outsider", age=4),
        ],
        RESERVING,
    )


# Each row: the reservation, whether it is in use, who holds it, and the note.
RESERVATION_ROWS = [
    ("reservations[0]", True, ["default/web"], ""),
    ("reservations[1]", False, [], "no LoadBalancer Service default/gone: kept free for it"),
    (
        "reservations[2]",
        False,
        ["default/old"],
        "held by default/old; default/old-and-new gets it once released",
    ),
    ("reservations[3]", False, [], "default/pinned requests 198.51.100.1 instead"),
    ("reservations[4]", False, [], "default/web does not use IPv6"),
    (
        "reservations[5]",
        False,
        [],
        "pool 'team' admits only namespaces team-a: default/outsider will be refused 203.0.113.2",
    ),
]


@pytest.mark.parametrize(
    ("reservation", "in_use", "held_by", "note"),
    RESERVATION_ROWS,
    ids=[f"{r[0]}: {r[3] or 'in use'}" for r in RESERVATION_ROWS],
)
def test_status_lists_each_reservation_whether_it_is_in_use_and_by_whom(
    reservation: str, in_use: bool, held_by: list[str], note: str
) -> None:
    rows = {r.reservation: r for r in reservation_report().reservations}
    row = rows[reservation]
    assert (row.in_use, row.held_by, row.note) == (in_use, held_by, note)


def test_a_service_waiting_for_its_reserved_address_says_so_in_its_row() -> None:
    rows = {r.service: r for r in reservation_report().services}
    assert rows["default/old-and-new"].state == "pending"
    assert rows["default/old-and-new"].reason == (
        "reserved address 198.51.100.7 (reservations[2]): it is held by default/old "
        "without the same sharing key"
    )


def test_a_pending_service_explains_its_unused_reservation() -> None:
    report = build([svc("web", age=0)], {"config.yaml": RESERVING["config.yaml"]})
    (web,) = [r for r in report.reservations if r.reservation == "reservations[0]"]
    assert not web.in_use
    assert web.note == "not in default/web's status yet: is the controller up?"


def test_reserved_addresses_nobody_holds_are_not_counted_free() -> None:
    pools = {(p.pool, p.family): p for p in reservation_report().pools}
    lan = pools[("lan", "IPv4")]
    # 8 addresses: web, old and pinned hold 3; .6 (gone's) and .8 (pinned's) are kept free.
    assert (lan.size, lan.used, lan.reserved, lan.free) == (8, 3, 2, 3)
    assert (pools[("lan", "IPv6")].reserved, pools[("team", "IPv4")].reserved) == (1, 1)


def test_the_reservations_table_is_rendered_and_in_json() -> None:
    report = reservation_report()
    text = status.render(report)
    assert "POOL  FAMILY  SIZE  USED  FREE  RESERVED  CONFLICT" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("RESERVATION "))
    assert lines[header].split() == [
        "RESERVATION", "ADDRESS", "POOL", "FOR", "IN", "USE", "HELD", "BY", "NOTE",
    ]  # fmt: skip
    assert lines[header + 1].split()[:6] == [
        "reservations[0]", "198.51.100.5", "lan", "default/web", "yes", "default/web",
    ]  # fmt: skip
    assert lines[header + 2].split()[4:6] == ["no", "-"]
    assert '"reservations": [' in status.render(report, "json")


def test_no_reservations_no_table() -> None:
    assert "RESERVATION" not in status.render(build([svc("a")], CONFIG))


def test_a_service_whose_address_another_host_uses_shows_as_conflict() -> None:
    report = status.Report(
        None,
        [
            status.ServiceRow("default/a", ["198.51.100.7"], "lan", "ok", ""),
            status.ServiceRow("default/b", ["198.51.100.8"], "lan", "ok", ""),
        ],
        [],
    )
    shown = status.with_conflicts(report, {"198.51.100.7": ("02:99:00:00:00:01", "n1")})
    a, b = shown.services
    assert a.state == "conflict" and "02:99:00:00:00:01" in a.reason and "n1" in a.reason
    assert b == report.services[1]
    assert status.with_conflicts(report, {}) is report


def test_with_reallocate_a_conflicted_address_shows_stale_and_is_not_counted_free() -> None:
    import ipaddress

    moving = {
        "config.yaml": "pools: [{name: lan, addresses: [198.51.100.1-198.51.100.3], "
        "onConflict: reallocate}]"
    }
    who = {ipaddress.ip_address("198.51.100.1"): "MAC 02:99:00:00:00:01, seen by node n1"}
    report = build([svc("a", "198.51.100.1"), svc("b", age=1)], moving, conflicts=who)
    a, b = report.services
    assert a.state == "stale" and "198.51.100.1 is in use by another host" in a.reason
    assert b.state == "stale"  # the rules give it an address the controller has not written
    (lan,) = report.pools
    # a moves to .2 in the dry run, b gets .3; .1 is nobody's and not free.
    assert (lan.size, lan.used, lan.free, lan.conflict) == (3, 2, 0, 1)
