"""The speaker's decisions, as functions of plain values with time as an argument (pure).

When a speaker may announce at all (``silence``, ``settle_wakeups``, with
``election.settling``), when it leaves and rejoins the election as its links come and go
(``follow_lan``: the withdraw hysteresis), and what it takes over or gives up between what it
announces and what it should (``diff``, ``handovers``). The speaker's loop calls them with the
clock it was given; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from lbctl import election, ipam
from lbctl.interfaces import Link

Links = tuple[Link, ...]


# --- gating ---


def silence(*, has_config: bool, synced: bool, lease_fresh: bool) -> str | None:
    """Why a speaker must announce nothing now, or None when it may (the start-up rule,
    ``election.settling``, comes next): no valid pool config, its caches not synced yet, or
    its own Lease not fresh (the API server out of reach: the others may have taken over)."""
    if not has_config:
        return "no valid config"
    if not synced:
        return "caches not synced"
    if not lease_fresh:
        return "our Lease is not fresh"
    return None


def settle(
    joined_for: float | None,
    starting_peers: Collection[str],
    renew_period: float,
    lease_duration: float,
) -> str | None:
    """Why a speaker that joined ``joined_for`` seconds ago (None: not yet) may not announce
    yet, or None once it may: ``election.settling`` with the ``wait`` and ``bound`` of its
    Lease timings (seconds; ``election.settle_times``). ``starting_peers``: the other speakers
    whose Lease says they are still starting."""
    wait, bound = election.settle_times(renew_period, lease_duration)
    return election.settling(joined_for, starting_peers=starting_peers, wait=wait, bound=bound)


def settle_wakeups(
    joined_for: float | None, renew_period: float, lease_duration: float
) -> list[float]:
    """Seconds from now until each step of the start-up rule still ahead (``wait`` and
    ``bound`` of ``election.settle_times``, 10 ms after each so the step has passed), for a
    speaker that joined ``joined_for`` seconds ago (None: not joined yet, nothing to wait for).
    """
    if joined_for is None:
        return []
    return [
        step - joined_for + 0.01
        for step in election.settle_times(renew_period, lease_duration)
        if joined_for < step
    ]


# --- withdraw hysteresis ---


class LanStep(enum.Enum):
    JOIN = "join"  # a link can carry our announcements again: back into the election
    WITHDRAW = "withdraw"  # none could for a whole grace period: out of the election
    STAY = "stay"  # nothing to change


@dataclass(frozen=True)
class LanFollow:
    step: LanStep
    no_link_since: float | None  # monotonic s since which no link could announce; None: one can


def follow_lan(
    *,
    serves: bool,
    now: float,
    no_link_since: float | None,
    withdrawn: bool,
    starting: bool,
    grace: float,
) -> LanFollow:
    """Out of the election while no link can carry our announcements; back when one can.

    ``serves``: a link is up for the addresses of a pool we may announce
    (``interfaces.serves_lan``); ``now``: monotonic seconds; ``no_link_since``: what the last
    call returned; ``withdrawn`` / ``starting``: our Lease's state; ``grace``: seconds without
    a link before withdrawing (the renew period), so a gap shorter than that (a carrier blip,
    a route replaced) moves nothing."""
    if serves:
        return LanFollow(LanStep.JOIN if withdrawn or starting else LanStep.STAY, None)
    since = now if no_link_since is None else no_link_since
    if not withdrawn and now - since >= grace:
        return LanFollow(LanStep.WITHDRAW, since)
    return LanFollow(LanStep.STAY, since)


# --- take over, give up ---


@dataclass(frozen=True)
class Took:
    ip: ipam.IP
    links: Links
    new: bool  # False: an address we announced already, now on other links


@dataclass(frozen=True)
class Diff:
    gave_up: tuple[ipam.IP, ...]  # announced, and no longer ours (in the order announced)
    took: tuple[Took, ...]  # ours now, or ours on other links (in the order wanted)


def diff(announced: Mapping[ipam.IP, Links], wanted: Mapping[ipam.IP, Links]) -> Diff:
    """What changes between the addresses (with their links) a speaker announces and those it
    should announce: the ones to give up, and the ones to take (new, or moved to other links:
    both start a fresh round of gratuitous ARP / NA)."""
    return Diff(
        gave_up=tuple(ip for ip in announced if ip not in wanted),
        took=tuple(
            Took(ip, links, new=ip not in announced)
            for ip, links in wanted.items()
            if announced.get(ip) != links
        ),
    )


def handovers(
    wanted: Collection[ipam.IP],
    watched: Collection[ipam.IP],
    owners_before: Mapping[ipam.IP, str | None],
    me: str,
) -> set[ipam.IP]:
    """The addresses we take over from another node of the cluster: announced at once, where
    an address new to the LAN (no owner before, or ours already) is probed first
    (``conflicts.Guard``, RFC 5227). ``watched``: the addresses we owned on the last pass."""
    return {ip for ip in wanted if ip not in watched and owners_before.get(ip) not in (None, me)}
