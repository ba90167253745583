"""The speaker's decisions with an injected clock: gating, withdraw hysteresis, take/give-up."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl import announcing
from lbctl.announcing import LanFollow, LanStep, Took
from lbctl.interfaces import Link

FRESH = "our Lease is not fresh"
RENEW, DURATION = 10.0, 40.0  # the speaker's defaults: wait 1 s after joining, bound 10 s
ETH0 = (Link("eth0", 2, "02:00:00:00:00:01", True),)
ETH1 = (Link("eth1", 3, "02:00:00:00:00:02", True),)


def STAY(since: float | None) -> LanFollow:
    return LanFollow(LanStep.STAY, since)


def WITHDRAWS(since: float) -> LanFollow:
    return LanFollow(LanStep.WITHDRAW, since)


JOINS = LanFollow(LanStep.JOIN, None)
A, B, C = (ipaddress.ip_address(f"198.51.100.{n}") for n in (200, 201, 202))
TOOK_C = (Took(C, ETH1, new=True),)


@pytest.mark.parametrize(
    ("says", "has_config", "synced", "fresh", "why"),
    [
        ("with a config, synced caches and a fresh Lease it may announce", True, True, True, None),
        ("without a valid config it announces nothing", False, True, True, "no valid config"),
        ("before its caches synced it announces nothing", True, False, True, "caches not synced"),
        ("with its Lease not fresh it announces nothing", True, True, False, FRESH),
        ("a missing config is said first", False, False, False, "no valid config"),
    ],
)
def test_when_a_speaker_announces_nothing(
    says: str, has_config: bool, synced: bool, fresh: bool, why: str | None
) -> None:
    assert announcing.silence(has_config=has_config, synced=synced, lease_fresh=fresh) == why, says


@pytest.mark.parametrize(
    ("says", "joined_for", "starting", "may_announce"),
    [
        ("a speaker not joined yet waits", None, set(), False),
        ("just after joining it waits a moment", 0.5, set(), False),
        ("a lone restart announces one wait after joining", 1.0, set(), True),
        ("while a peer is still starting it waits", 5.0, {"node2"}, False),
        ("but not past the bound", 10.0, {"node2"}, True),
        ("once every peer joined it announces", 5.0, set(), True),
    ],
)
def test_gating_at_start_up(
    says: str, joined_for: float | None, starting: set[str], may_announce: bool
) -> None:
    why = announcing.settle(joined_for, starting, RENEW, DURATION)
    assert (why is None) is may_announce, says


@pytest.mark.parametrize(
    ("says", "joined_for", "wakeups"),
    [
        ("not joined: nothing to wake for", None, []),
        ("just joined: wake after the wait and after the bound", 0.0, [1.01, 10.01]),
        ("past the wait: only the bound is ahead", 4.0, [6.01]),
        ("past the bound: nothing ahead", 10.0, []),
    ],
)
def test_when_the_start_up_rule_next_changes(
    says: str, joined_for: float | None, wakeups: list[float]
) -> None:
    got = announcing.settle_wakeups(joined_for, RENEW, DURATION)
    assert got == pytest.approx(wakeups), says


def follow_lan(
    serves: bool, now: float, since: float | None, withdrawn: bool, starting: bool
) -> LanFollow:
    """``announcing.follow_lan`` with the default renew period as its grace period."""
    return announcing.follow_lan(
        serves=serves,
        now=now,
        no_link_since=since,
        withdrawn=withdrawn,
        starting=starting,
        grace=RENEW,
    )


@pytest.mark.parametrize(
    ("says", "serves", "now", "since", "withdrawn", "starting", "follow"),
    [
        (
            "a link up, in the election: nothing changes",
            True,
            100.0,
            None,
            False,
            False,
            STAY(None),
        ),
        ("a link up while starting: join", True, 100.0, None, False, True, JOINS),
        ("a link back after withdrawing: rejoin", True, 100.0, 80.0, True, False, JOINS),
        (
            "a link back within the grace period: nothing moved",
            True,
            100.0,
            95.0,
            False,
            False,
            STAY(None),
        ),
        ("the last link lost: the gap starts now", False, 100.0, None, False, False, STAY(100.0)),
        (
            "a gap shorter than the renew period moves nothing",
            False,
            109.9,
            100.0,
            False,
            False,
            STAY(100.0),
        ),
        (
            "a gap of a whole renew period withdraws",
            False,
            110.0,
            100.0,
            False,
            False,
            WITHDRAWS(100.0),
        ),
        ("withdrawn already: nothing more", False, 130.0, 100.0, True, False, STAY(100.0)),
        (
            "starting, with no link: it withdraws too",
            False,
            110.0,
            100.0,
            False,
            True,
            WITHDRAWS(100.0),
        ),
    ],
)
def test_withdraw_hysteresis(
    says: str,
    serves: bool,
    now: float,
    since: float | None,
    withdrawn: bool,
    starting: bool,
    follow: LanFollow,
) -> None:
    assert follow_lan(serves, now, since, withdrawn, starting) == follow, says


def test_withdraw_hysteresis_over_time() -> None:
    """A blip moves nothing; a cut-off withdraws one renew period after the link went; a link
    back rejoins at once (the clock is the test's)."""
    since, withdrawn, steps = None, False, []
    for now, serves in [(0.0, True), (1.0, False), (5.0, True), (6.0, False), (15.9, False),
                        (16.0, False), (30.0, False), (31.0, True)]:  # fmt: skip
        got = follow_lan(serves, now, since, withdrawn, starting=False)
        since = got.no_link_since
        withdrawn = (withdrawn or got.step is LanStep.WITHDRAW) and got.step is not LanStep.JOIN
        steps.append(got.step)
    S, W, J = LanStep.STAY, LanStep.WITHDRAW, LanStep.JOIN
    assert steps == [S, S, S, S, S, W, S, J]


@pytest.mark.parametrize(
    ("says", "announced", "wanted", "gave_up", "took"),
    [
        ("nothing announced, nothing wanted: nothing to do", {}, {}, (), ()),
        ("a new address is taken", {}, {A: ETH0}, (), (Took(A, ETH0, new=True),)),
        ("an address no longer ours is given up", {A: ETH0}, {}, (A,), ()),
        ("an address kept on the same links is left alone", {A: ETH0}, {A: ETH0}, (), ()),
        (
            "one moved to other links is taken again, not new",
            {A: ETH0},
            {A: ETH1},
            (),
            (Took(A, ETH1, new=False),),
        ),
        ("one given up, one kept, one taken", {A: ETH0, B: ETH0}, {B: ETH0, C: ETH1}, (A,), TOOK_C),
    ],
)
def test_take_and_give_up(
    says: str,
    announced: dict[announcing.ipam.IP, announcing.Links],
    wanted: dict[announcing.ipam.IP, announcing.Links],
    gave_up: tuple[announcing.ipam.IP, ...],
    took: tuple[Took, ...],
) -> None:
    got = announcing.diff(announced, wanted)
    assert (got.gave_up, got.took) == (gave_up, took), says


@pytest.mark.parametrize(
    ("says", "watched", "before", "handover"),
    [
        ("another node's address is a handover: announced at once", set(), {A: "node2"}, {A}),
        ("an address nobody announced is new to the LAN: probed first", set(), {A: None}, set()),
        ("an address never seen is new to the LAN", set(), {}, set()),
        ("an address we announced before is no handover", set(), {A: "node1"}, set()),
        ("an address we watch already is no handover", {A}, {A: "node2"}, set()),
    ],
)
def test_handovers(
    says: str,
    watched: set[announcing.ipam.IP],
    before: dict[announcing.ipam.IP, str | None],
    handover: set[announcing.ipam.IP],
) -> None:
    assert announcing.handovers({A: ETH0}, watched, before, "node1") == handover, says
