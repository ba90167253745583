"""The lease observer: a record is live while it changed within its duration on our clock."""

from __future__ import annotations

import datetime

import pytest

from lbctl import leases

# Each step: (monotonic seconds, record seen then or None for no reading).
Steps = list[tuple[float, str | None]]


@pytest.mark.parametrize(
    ("says", "steps", "now", "live"),
    [
        ("a record just seen is live", [(0.0, "r1")], 0.0, True),
        ("a record seen less than its duration ago is live", [(0.0, "r1")], 3.9, True),
        ("a record unchanged for its duration has expired", [(0.0, "r1")], 4.0, False),
        (
            "the same record seen again is no renewal (a relist)",
            [(0.0, "r1"), (3.0, "r1")],
            4.5,
            False,
        ),
        ("a changed record counts from when it was seen", [(0.0, "r1"), (3.0, "r2")], 6.9, True),
        (
            "a renewal seen late counts from when it was seen, not when it was written",
            [(0.0, "r1"), (10.0, "r2")],
            13.0,
            True,
        ),
        ("nothing seen is not live", [], 0.0, False),
    ],
)
def test_observer(says: str, steps: Steps, now: float, live: bool) -> None:
    seen: leases.Observer[str] = leases.Observer()
    for at, record in steps:
        if record is not None:
            seen.see("lease", record, 4.0, at)
    assert seen.live("lease", now) is live, says
    assert (seen.renewing(now) == {"lease"}) is live, says


def test_a_forgotten_lease_is_not_live_and_expiry_counts_down_from_the_last_change() -> None:
    seen: leases.Observer[str] = leases.Observer()
    seen.see("a", "r1", 4.0, 0.0)
    seen.see("b", "r1", 4.0, 1.0)
    assert seen.next_expiry(2.0) == 2.0  # a expires at 4.0
    seen.forget("a")
    assert not seen.live("a", 2.0)
    assert seen.next_expiry(2.0) == 3.0
    assert seen.next_expiry(6.0) is None


@pytest.mark.parametrize(
    ("says", "text", "parsed"),
    [
        (
            "Z is UTC",
            "2026-01-01T00:00:00.000000Z",
            datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        ),
        (
            "an offset is kept",
            "2026-01-01T01:00:00+01:00",
            datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        ),
        ("no time is None", None, None),
        ("junk is None", "yesterday", None),
    ],
)
def test_parse_time(says: str, text: object, parsed: datetime.datetime | None) -> None:
    assert leases.parse_time(text) == parsed, says
