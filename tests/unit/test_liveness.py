"""Fast liveness: who the election leaves out, from advertisements heard on the LAN."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from lbctl.liveness import PeerWatch, down_interval

IV = 0.1  # the default advertisement interval
# An event: (time, node, incarnation, accused, yielding); times in seconds on the caller's
# clock.
Event = tuple[float, str, int, tuple[str, ...], bool]


def steady(
    node: str,
    start: float,
    end: float,
    inc: int = 1,
    accused: tuple[str, ...] = (),
    yielding: bool = False,
) -> list[Event]:
    """``node`` advertising every interval from ``start`` to ``end`` inclusive."""
    n = round((end - start) / IV)
    return [(round(start + k * IV, 6), node, inc, accused, yielding) for k in range(n + 1)]


def replay(events: Sequence[Event], me: str = "a", hold: float = 1.0) -> PeerWatch:
    watch = PeerWatch(me, hold=hold)
    for t, node, inc, accused, yielding in sorted(events):
        watch.heard(node, incarnation=inc, interval=IV, accused=accused, yielding=yielding, now=t)
    return watch


CASES: list[tuple[str, list[Event], float, set[str]]] = [
    ("a peer heard every interval is in", steady("b", 0, 2), 2.05, set()),
    (
        "a peer silent for less than its down interval is still in",
        steady("b", 0, 1),
        1 + down_interval(IV) - 0.01,
        set(),
    ),
    (
        "a peer silent past 3.5 intervals is out",
        steady("b", 0, 1),
        1 + down_interval(IV) + 0.01,
        {"b"},
    ),
    ("a peer never heard is left to its Lease", [], 5.0, set()),
    ("our own advertisements, looped back, count for nothing", steady("a", 0, 1), 3.0, set()),
    (
        "a peer back after silence is held down until heard for the hold time",
        steady("b", 0, 1) + steady("b", 2, 2.5),
        2.55,
        {"b"},
    ),
    (
        "a peer back after silence is in once heard without a gap for the hold time",
        steady("b", 0, 1) + steady("b", 2, 3.1),
        3.12,
        set(),
    ),
    (
        "a restarted speaker (new incarnation) is held down even without a gap",
        steady("b", 0, 1) + steady("b", 1.1, 1.5, inc=2),
        1.55,
        {"b"},
    ),
    (
        "a link flapping (up 200 ms, down 600 ms) goes out once and never comes back in",
        steady("b", 0, 1)
        + [e for k in range(10) for e in steady("b", 1.6 + 0.8 * k, 1.8 + 0.8 * k)],
        9.7,
        {"b"},
    ),
    (
        "a link down for 200 ms at a time is never taken out: the gap is under 3.5 intervals",
        [e for k in range(25) for e in steady("b", 0.4 * k, 0.4 * k + 0.1)],
        9.75,
        set(),
    ),
    (
        "a peer we hear accusing c takes c out for us too",
        steady("b", 0, 1, accused=("c",)) + steady("c", 0, 1),
        1.05,
        {"c"},
    ),
    (
        "an accused speaker withdraws itself",
        steady("b", 0, 1, accused=("a",)),
        1.05,
        {"a"},
    ),
    (
        "accusations from a peer that is down do not count",
        steady("b", 0, 1, accused=("c",)) + steady("c", 0, 3),
        3.0,
        {"b"},
    ),
    (
        "accusations from a peer that yields do not count: its own link is the likely cause",
        steady("b", 0, 1, accused=("c",), yielding=True) + steady("c", 0, 1),
        1.05,
        {"b"},
    ),
    (
        "a yielding peer's accusation does not take us out",
        steady("b", 0, 1, accused=("a",), yielding=True),
        1.05,
        {"b"},
    ),
    (
        "after a partition heals, the other side's accusations are ignored while it is held down",
        steady("b", 0, 1) + steady("b", 3, 3.5, accused=("a",)),
        3.55,
        {"b"},
    ),
]


@pytest.mark.parametrize(("says", "events", "now", "out"), CASES, ids=[c[0] for c in CASES])
def test_who_is_out(says: str, events: list[Event], now: float, out: set[str]) -> None:
    assert replay(events).out(now) == out, says


def test_our_advertisements_accuse_only_the_peers_we_do_not_hear() -> None:
    watch = replay(steady("b", 0, 1) + steady("c", 0, 3) + steady("d", 0, 3, accused=("c",)))
    assert watch.accusations(3.0) == {"b"}  # not c: d's word is not our observation
    # b comes back: we stop accusing it at once, though it is held down for us.
    watch.heard("b", incarnation=1, interval=IV, now=3.05)
    assert watch.accusations(3.05) == set() and "b" in watch.down(3.05)


def test_while_we_yield_our_advertisements_accuse_nobody() -> None:
    # Our link flapped: we missed b, but that says more about our link than about b.
    watch = replay(steady("b", 0, 1))
    watch.link_lost(1.0)
    assert watch.yielding(1.5) and watch.accusations(1.5) == set()
    assert watch.accusations(2.5) == {"b"}  # held for 1 s; b still silent: now we say so


def test_next_change_says_when_to_look_again() -> None:
    watch = replay(steady("b", 0, 1) + steady("c", 0, 0.5) + steady("c", 1.0, 1.0))
    # b goes silent at 1 + 0.35; c, back at 1.0, leaves its hold-down at 2.0.
    assert watch.next_change(1.0) == pytest.approx(1 + down_interval(IV))
    assert watch.next_change(1.5) == pytest.approx(2.0)
    assert watch.next_change(2.5) is None


@pytest.mark.parametrize(
    ("says", "interval", "silent_for", "out"),
    [
        ("a forged tiny interval is clamped to 10 ms", 1e-9, 0.034, set()),
        ("a forged huge interval is clamped to 10 s", 1e9, 35.1, {"b"}),
    ],
)
def test_advertised_intervals_are_clamped(
    says: str, interval: float, silent_for: float, out: set[str]
) -> None:
    watch = PeerWatch("a")
    watch.heard("b", incarnation=1, interval=interval, now=0.0)
    assert watch.out(silent_for) == out, says


def test_forgetting_peers_that_left_the_membership() -> None:
    watch = replay(steady("b", 0, 1) + steady("c", 0, 1))
    watch.keep_only(["c"])
    assert watch.out(5.0) == {"c"}


def test_after_our_own_silence_we_leave_ourselves_out_for_the_hold_time() -> None:
    watch = PeerWatch("a", interval=IV, hold=1.0)
    for k in range(11):
        watch.sent(k * IV)
    assert "a" not in watch.out(1.0)
    watch.sent(5.0)  # frozen (or every link down) from 1.0 to 5.0
    assert "a" in watch.out(5.0) and "a" in watch.out(5.9)
    assert watch.next_change(5.5) == pytest.approx(6.0)
    assert "a" not in watch.out(6.0)


def test_sending_on_time_never_holds_us_down() -> None:
    watch = PeerWatch("a", interval=IV, hold=1.0)
    for k in range(100):
        watch.sent(k * IV * 1.2)  # late by a fifth each time: still within 3.5 intervals
    assert watch.out(12.0) == set()


def test_an_accusation_from_a_peer_we_hear_holds_us_down_after_it_stops() -> None:
    # Our link flapped: b missed us and said so once; it holds us down for a second, so do we.
    watch = replay([*steady("b", 0, 1), (1.1, "b", 1, ("a",), False), *steady("b", 1.2, 3)])
    assert "a" in watch.out(1.5) and "a" in watch.out(2.05)
    assert "a" not in watch.out(2.2)


def test_a_peer_that_says_it_yields_is_out_at_once() -> None:
    watch = replay(steady("b", 0, 1))
    watch.heard("b", incarnation=1, interval=IV, yielding=True, now=1.05)
    assert watch.out(1.05) == {"b"}
    watch.heard("b", incarnation=1, interval=IV, now=1.15)
    assert watch.out(1.15) == set()


@pytest.mark.parametrize(
    ("says", "losses", "now", "yielding"),
    [
        ("one lost link holds us for one hold", [0.0], 0.99, True),
        ("and no longer", [0.0], 1.01, False),
        ("a second loss within the window holds us twice as long", [0.0, 2.0], 3.9, True),
        ("a flapping link holds us for at most eight holds", [0.4 * k for k in range(25)],
         9.6 + 8.0 - 0.01, True),
        ("and then lets us back", [0.4 * k for k in range(25)], 9.6 + 8.0 + 0.01, False),
        ("losses further apart than the window do not add up", [0.0, 11.0], 12.01, False),
    ],
)  # fmt: skip
def test_our_own_holds_are_dampened(
    says: str, losses: list[float], now: float, yielding: bool
) -> None:
    watch = PeerWatch("a", interval=IV, hold=1.0)
    for t in losses:
        watch.link_lost(t)
    assert watch.yielding(now) is yielding, says
    assert ("a" in watch.out(now)) is yielding
