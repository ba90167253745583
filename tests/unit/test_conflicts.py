"""Address conflicts: probe, announce, defend once, stand down, come back by itself."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl.conflicts import Action, Do, Guard, Schedule, State

IP = ipaddress.IPv4Address("198.51.100.200")
IP6 = ipaddress.IPv6Address("2001:db8::c8")
FOREIGN = b"\x02\x99\x00\x00\x00\x01"
PEER = b"\x02\x1b\x00\x00\x00\x02"  # another node of the cluster
CLUSTER = {PEER}
S = Schedule(probes=2, interval=0.05, wait=0.1, recheck=5.0, defend_interval=10.0)


def probed(guard: Guard, ip: ipaddress.IPv4Address | ipaddress.IPv6Address = IP) -> list[Do]:
    """Run the probe schedule from t=0 with nobody answering; the actions in order."""
    done = [a.do for a in guard.own([ip], 0.0)]
    for t in (0.05, 0.16):
        done += [a.do for a in guard.due(t)]
    return done


def test_an_address_is_probed_twice_then_announced_when_nobody_answers() -> None:
    guard = Guard(S)
    assert guard.own([IP], 0.0) == [Action(Do.PROBE, IP)]
    assert guard.announcing() == set()
    assert guard.due(0.04) == []  # not yet
    assert guard.due(0.05) == [Action(Do.PROBE, IP)]
    assert guard.next_change() == pytest.approx(0.15)
    assert guard.due(0.16) == [Action(Do.ANNOUNCE, IP)]
    assert guard.announcing() == {IP} and guard.next_change() is None


def test_with_probing_off_an_address_is_announced_at_once() -> None:
    guard = Guard(Schedule(probes=0))
    assert guard.own([IP6], 0.0) == [Action(Do.ANNOUNCE, IP6)]


def test_a_takeover_from_another_node_is_announced_at_once_and_still_watched() -> None:
    guard = Guard(S)
    assert guard.own([IP, IP6], 0.0, handover={IP}) == [
        Action(Do.ANNOUNCE, IP),
        Action(Do.PROBE, IP6),
    ]
    assert guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=1.0)[0].do is Do.DEFEND


def test_a_foreign_answer_while_probing_is_a_conflict_reported_once() -> None:
    guard = Guard(S)
    guard.own([IP], 0.0)
    got = guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=0.02)
    assert got == [Action(Do.STAND_DOWN, IP, FOREIGN)]
    assert guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=0.03) == []
    assert guard.due(0.2) == [] and guard.announcing() == set()
    assert guard.conflicts() == {IP: FOREIGN}


def test_another_hosts_probe_while_we_probe_is_a_conflict_too() -> None:
    guard = Guard(S)
    guard.own([IP], 0.0)
    assert guard.claim(IP, FOREIGN, probe=True, cluster=CLUSTER, now=0.02)[0].do is Do.STAND_DOWN


def test_the_clusters_own_macs_never_conflict_as_in_a_handover() -> None:
    guard = Guard(S)
    guard.own([IP], 0.0)
    assert guard.claim(IP, PEER, probe=False, cluster=CLUSTER, now=0.02) == []
    assert probed(Guard(S)) == [Do.PROBE, Do.PROBE, Do.ANNOUNCE]


def test_while_announcing_one_foreign_claim_is_defended_and_a_second_stands_down() -> None:
    guard = Guard(S)
    probed(guard)
    assert guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=1.0) == [
        Action(Do.DEFEND, IP, FOREIGN)
    ]
    assert guard.announcing() == {IP}
    assert guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=3.0) == [
        Action(Do.STAND_DOWN, IP, FOREIGN)
    ]
    assert guard.announcing() == set()


def test_claims_further_apart_than_the_defend_interval_are_each_defended() -> None:
    guard = Guard(S)
    probed(guard)
    for t in (1.0, 12.0, 23.0):
        assert guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=t)[0].do is Do.DEFEND


def test_a_probe_for_an_address_we_announce_is_just_answered() -> None:
    guard = Guard(S)
    probed(guard)
    assert guard.claim(IP, FOREIGN, probe=True, cluster=CLUSTER, now=1.0) == []


def test_a_conflict_is_probed_again_and_announced_once_the_other_host_is_gone() -> None:
    guard = Guard(S)
    guard.own([IP], 0.0)
    guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=0.01)
    assert guard.next_change() == pytest.approx(5.01)
    # Still there at the recheck: it answers the first probe; nothing new is reported.
    assert guard.due(5.01) == [Action(Do.PROBE, IP)]
    assert guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=5.02) == []
    assert guard.conflicts() == {IP: FOREIGN}
    # Gone by the next recheck: two silent probes, then resolved and announced.
    assert guard.due(10.02) == [Action(Do.PROBE, IP)]
    assert guard.due(10.07) == [Action(Do.PROBE, IP)]
    assert guard.due(10.18) == [Action(Do.RESOLVED, IP, FOREIGN), Action(Do.ANNOUNCE, IP)]
    assert guard.conflicts() == {} and guard.announcing() == {IP}


def test_an_address_no_longer_owned_is_forgotten_and_probed_afresh_when_owned_again() -> None:
    guard = Guard(S)
    probed(guard)
    assert guard.own([], 1.0) == [] and guard.announcing() == set()
    assert guard.own([IP], 2.0) == [Action(Do.PROBE, IP)]


def test_claims_for_addresses_we_do_not_own_are_ignored() -> None:
    assert Guard(S).claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=0.0) == []


def test_states_are_named_for_status() -> None:
    assert [s.value for s in State] == ["probing", "announcing", "conflict"]


def conflicted(guard: Guard) -> None:
    """Own IP, and have another host answer the first probe."""
    guard.own([IP], 0.0)
    guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=0.02)


def test_a_conflicted_address_no_longer_owned_is_forgotten_unless_kept() -> None:
    guard = Guard(S)
    conflicted(guard)
    guard.own([], 1.0)
    assert guard.conflicts() == {} and guard.next_change() is None


def test_a_kept_conflict_is_still_reported_and_probed_but_never_announced() -> None:
    guard = Guard(S)
    conflicted(guard)
    assert guard.own([], 1.0, keep=lambda ip: True) == []
    assert guard.conflicts() == {IP: FOREIGN} and guard.kept() == {IP}
    assert [a.do for a in guard.due(5.02)] == [Do.PROBE]  # looked at again, on schedule
    guard.claim(IP, FOREIGN, probe=False, cluster=CLUSTER, now=5.03)  # still there
    assert guard.due(5.2) == [] and guard.conflicts() == {IP: FOREIGN}
    assert guard.announcing() == set()


def test_a_kept_conflict_whose_host_left_is_resolved_and_forgotten_not_announced() -> None:
    guard = Guard(S)
    conflicted(guard)
    guard.own([], 1.0, keep=lambda ip: True)
    done = guard.due(5.02) + guard.due(5.07) + guard.due(5.2)
    assert [a.do for a in done] == [Do.PROBE, Do.PROBE, Do.RESOLVED]
    assert guard.conflicts() == {} and guard.kept() == set() and guard.announcing() == set()


def test_a_kept_conflict_owned_again_is_announced_once_the_host_left() -> None:
    guard = Guard(S)
    conflicted(guard)
    guard.own([], 1.0, keep=lambda ip: True)
    assert guard.own([IP], 2.0) == [] and guard.kept() == set()
    done = guard.due(5.02) + guard.due(5.07) + guard.due(5.2)
    assert [a.do for a in done] == [Do.PROBE, Do.PROBE, Do.RESOLVED, Do.ANNOUNCE]


def test_only_conflicted_addresses_are_kept() -> None:
    guard = Guard(S)
    probed(guard)  # announcing, no conflict
    guard.own([], 1.0, keep=lambda ip: True)
    assert guard.kept() == set() and guard.next_change() is None
