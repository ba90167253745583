"""The lab's outage measure: gaps between successful requests."""

from __future__ import annotations

import pytest

from lbctl.lab.traffic import Outage, Sample, outages, parse


def run(pattern: str) -> list[Sample]:
    """One request per 0.1 s: '+' answered, '-' failed."""
    return [Sample(i / 10, c == "+") for i, c in enumerate(pattern)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("++++", []),
        ("--++", []),  # failures before the first success are start-up
        ("++--++", [Outage(0.1, 0.4, 2)]),
        ("+-+--+", [Outage(0.0, 0.2, 1), Outage(0.2, 0.5, 2)]),
        ("++---", [Outage(0.1, None, 3)]),  # never came back
        ("", []),
    ],
)
def test_outages(pattern: str, expected: list[Outage]) -> None:
    got = outages(run(pattern))
    assert [(round(o.start, 6), o.end and round(o.end, 6), o.failed) for o in got] == [
        (o.start, o.end, o.failed) for o in expected
    ]


def test_seconds_and_parse() -> None:
    assert Outage(1.0, 3.5, 9).seconds == 2.5 and Outage(1.0, None, 9).seconds is None
    lines = ['{"t": 1.5, "ok": true, "body": "hi"}', "", '{"t": 2, "ok": false}', '{"t": 3, "o']
    assert parse(lines) == [Sample(1.5, True, "hi"), Sample(2.0, False, "")]
