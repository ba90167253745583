"""Repeated Events count up one object, as Kubernetes' recorder does; one sentence per row."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import reconcile
from lbctl.kube.writer import ServiceWriter
from lbctl.repeats import CountUp, EventKey, Repeats

FAILED = EventKey(
    "lbctl-controller", "c1", "Service", "ns", "web", "u1", "Warning", "AllocationFailed", "no"
)

# Each row: Events created before (key → name), then the Event recorded now and what to do.
ROWS = [
    ("the first Event is created", {}, FAILED, None),
    (
        "the same Event again counts up the one created",
        {FAILED: "web.1"},
        FAILED,
        CountUp("web.1", 2),
    ),
    (
        "another message is another Event",
        {FAILED: "web.1"},
        replace(FAILED, message="other"),
        None,
    ),
    ("another reason is another Event", {FAILED: "web.1"}, replace(FAILED, reason="X"), None),
    (
        "the same Event on another Service is that Service's own",
        {FAILED: "web.1"},
        replace(FAILED, name="db"),
        None,
    ),
    (
        "the same Event on a new Service of the same name (another uid) is new",
        {FAILED: "web.1"},
        replace(FAILED, uid="u2"),
        None,
    ),
    (
        "the same Event from another replica is that replica's own",
        {FAILED: "web.1"},
        replace(FAILED, host="c2"),
        None,
    ),
]


@pytest.mark.parametrize(("title", "created", "now", "want"), ROWS, ids=[r[0] for r in ROWS])
def test_what_to_do_with_an_event(
    title: str, created: dict[EventKey, str], now: EventKey, want: CountUp | None
) -> None:
    rep = Repeats()
    for key, name in created.items():
        rep.created(key, name)
    assert rep.next(now) == want


def test_each_repeat_counts_one_more() -> None:
    rep = Repeats()
    rep.created(FAILED, "web.1")
    assert [rep.next(FAILED) for _ in range(3)] == [CountUp("web.1", n) for n in (2, 3, 4)]


def test_an_event_forgotten_after_it_expired_is_created_again() -> None:
    rep = Repeats()
    rep.created(FAILED, "web.1")
    rep.forget(FAILED)
    assert rep.next(FAILED) is None


def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    rep = Repeats(size=2)
    a, b, c = (replace(FAILED, name=n) for n in "abc")
    rep.created(a, "a.1")
    rep.created(b, "b.1")
    assert rep.next(a) == CountUp("a.1", 2)  # a is now the most recent
    rep.created(c, "c.1")
    assert rep.next(b) is None and rep.next(a) == CountUp("a.1", 3)


class FakeEvents:
    """Records Event creates and patches; a patch of a name it does not hold is a 404."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def create_namespaced_event(self, ns: str, body: client.CoreV1Event) -> Any:
        self.calls.append("create")
        self.objects[body.metadata.name] = {"count": body.count, "message": body.message}
        return body

    def patch_namespaced_event(self, name: str, ns: str, body: dict[str, Any]) -> Any:
        self.calls.append("patch")
        if name not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        self.objects[name].update(body)
        return SimpleNamespace()


def test_the_writer_creates_an_event_once_then_counts_it_up_and_recreates_it_when_expired() -> None:
    fake = FakeEvents()
    w = ServiceWriter(client.ApiClient(), may_write=lambda: True, host="c1")
    w._core = fake  # type: ignore[assignment]
    obj = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    event = reconcile.Event(reconcile.EventType.WARNING, "AllocationFailed", "no address: x")
    for _ in range(3):
        w.event(obj, event)
    assert fake.calls == ["create", "patch", "patch"]
    [(name, body)] = fake.objects.items()
    assert body["count"] == 3 and "lastTimestamp" in body
    fake.objects.clear()  # the API server's event TTL ran out
    w.event(obj, event)
    w.event(obj, event)
    assert fake.calls[3:] == ["patch", "create", "patch"]
    [(new_name, body)] = fake.objects.items()
    assert new_name != name and body["count"] == 2
