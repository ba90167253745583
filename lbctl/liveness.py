"""Fast liveness of peer speakers from their advertisements on the LAN (pure: time is an argument).

Semantics from VRRPv3 (RFC 5798): every speaker advertises on each link it may announce on,
every ``interval`` (100 ms by default, §5.2.7 "Max Advertise Interval"); a receiver declares a
peer down when it has heard nothing from it for the peer's own Master_Down_Interval (§6.1):
``3 * interval + skew``, where the skew here is half an interval (VRRP derives it from a
priority we do not have). The Lease stays the source of truth for membership: this module can
only take peers *out* of the election, never put one in. Three rules on top of VRRP's timing:

- **Hold-down.** A peer that was down must be heard without a gap for ``hold`` seconds before
  it counts again, so a flapping link does not move addresses back and forth.
- **Accusations.** Each advertisement lists the peers its sender does not hear (its direct
  observations only). A peer accused by any peer we hear is out for us too, so every speaker
  drops it together, and an accused speaker withdraws itself: when A stops hearing B while C
  still hears B, B's addresses move once, to the same heir everywhere, instead of B and A both
  answering. Accusations from a peer we do not hear (down or in hold-down) do not count: after
  a LAN partition heals, the two sides' mutual accusations are ignored and the hold-down
  converges them. Nor do those of a peer that yields: what a speaker whose own link flaps
  (or that was frozen) misses is most likely its own fault, so it accuses nobody while it
  yields, and a yielding peer's word (an older speaker's too) is discounted all the same.
- **Never heard is not down.** A peer we have never heard (an old speaker, another segment,
  one that died before we started) is left to its Lease.
- **We hold ourselves down too, and say so.** When our own advertisements stopped for longer
  than our down interval (the process was frozen, every link was down), when a link we
  advertise on went down, or when a peer we hear accuses us, we leave ourselves out for the
  hold time and our advertisements say we are *yielding* (VRRP's priority 0, RFC 5798 §6.4.3:
  "take over now"), so every peer drops us at once and a node that wakes up, or whose link
  flaps, never answers beside the heirs of its addresses. Repeated triggers within
  ``DAMP_WINDOW`` double the hold each time, up to ``MAX_HOLD_FACTOR`` times it (dampening, as
  for flapping routes): a flapping link moves its addresses once, not back and forth.

Shapes: node names are strings; times are seconds on one monotonic clock the caller supplies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_INTERVAL = 0.1  # seconds between advertisements
DEFAULT_HOLD = 1.0  # seconds a returning peer must be heard without a gap
DAMP_WINDOW = 10.0  # seconds over which our own hold triggers add up
MAX_HOLD_FACTOR = 8  # our own hold grows to at most this many holds


def down_interval(interval: float) -> float:
    """RFC 5798 §6.1 Master_Down_Interval with a skew of half an interval: 3.5 * interval."""
    return 3.5 * interval


@dataclass
class _Peer:
    incarnation: int
    interval: float  # seconds, as the peer advertises it
    run_start: float  # first advertisement of the current unbroken run
    last: float  # last advertisement heard
    held: bool  # the current run follows a time down: the hold-down applies
    accused: frozenset[str]
    yielding: bool = False  # it says it is out of the election (priority 0)


class PeerWatch:
    """What this speaker (``me``) hears of its peers' advertisements.

    ``heard`` records one advertisement; ``out(now)`` is the set the election must leave out.
    Not thread-safe: the caller serialises calls.
    """

    def __init__(
        self, me: str, *, interval: float = DEFAULT_INTERVAL, hold: float = DEFAULT_HOLD
    ) -> None:
        self.me = me
        self.interval = interval  # our own advertisement interval
        self.hold = hold
        self._peers: dict[str, _Peer] = {}
        self._last_sent: float | None = None
        self._held_until = float("-inf")
        self._triggers: list[float] = []  # when we held ourselves down, within DAMP_WINDOW

    def _hold_self(self, now: float) -> None:
        self._triggers = [t for t in self._triggers if now - t <= DAMP_WINDOW] + [now]
        factor = min(2 ** (len(self._triggers) - 1), MAX_HOLD_FACTOR)
        self._held_until = max(self._held_until, now + self.hold * factor)

    def sent(self, now: float) -> None:
        """We advertised at ``now``; after a gap past our down interval, hold ourselves down."""
        if self._last_sent is not None and now - self._last_sent > down_interval(self.interval):
            self._hold_self(now)
        self._last_sent = now

    def link_lost(self, now: float) -> None:
        """A link we advertise on went down: our peers may miss us; hold ourselves down."""
        self._hold_self(now)

    def yielding(self, now: float) -> bool:
        """Whether we hold ourselves out of the election now (our advertisements say so)."""
        return now < self._held_until

    def heard(
        self,
        node: str,
        *,
        incarnation: int,
        interval: float,
        accused: Iterable[str] = (),
        yielding: bool = False,
        now: float,
    ) -> None:
        """An advertisement from ``node``; our own (looped back or from another link) is ignored.

        ``interval`` is clamped to [10 ms, 10 s] so a forged value cannot stall or race us.
        """
        if node == self.me:
            return
        interval = min(max(interval, 0.01), 10.0)
        peer = self._peers.get(node)
        accused = frozenset(accused)
        if peer is None:
            peer = self._peers[node] = _Peer(
                incarnation, interval, now, now, False, accused, yielding
            )
            self._accused_by(peer, now)
            return
        gap = now - peer.last
        restarted = incarnation != peer.incarnation
        if restarted or gap > down_interval(peer.interval):
            # A new run after silence (or a restarted speaker): it must prove itself.
            peer.run_start, peer.held = now, True
        peer.incarnation, peer.interval, peer.last, peer.accused, peer.yielding = (
            incarnation,
            interval,
            now,
            accused,
            yielding,
        )
        self._accused_by(peer, now)

    def _accused_by(self, peer: _Peer, now: float) -> None:
        if self.me in self._taken_out_by(peer, now):
            self._hold_self(now)

    def _taken_out_by(self, peer: _Peer, now: float) -> frozenset[str]:
        """Whom ``peer``'s accusations take out for us: nobody while it is down or held down
        for us, or while it yields (its own link or process is the likely cause)."""
        return peer.accused if self._up(peer, now) and not peer.yielding else frozenset()

    def down(self, now: float) -> frozenset[str]:
        """Peers heard before that are silent past their down interval or still held down."""
        return frozenset(name for name, peer in self._peers.items() if not self._up(peer, now))

    def _up(self, peer: _Peer, now: float) -> bool:
        if now - peer.last > down_interval(peer.interval):
            return False
        return not peer.held or now - peer.run_start >= self.hold

    def out(self, now: float) -> frozenset[str]:
        """Whom the election leaves out: peers down for us, peers that say they yield,
        whoever a peer we hear (and that does not yield) accuses, and ourselves while we
        yield."""
        down = self.down(now)
        out: set[str] = {self.me} if self.yielding(now) else set()
        for name, peer in self._peers.items():
            out |= self._taken_out_by(peer, now)
            if peer.yielding and name not in down:
                out.add(name)
        return down | out

    def accusations(self, now: float) -> frozenset[str]:
        """What our own advertisements list: the peers we hear nothing from (direct only),
        and nobody while we yield (then we are the likely cause)."""
        if self.yielding(now):
            return frozenset()
        return frozenset(
            name
            for name, peer in self._peers.items()
            if now - peer.last > down_interval(peer.interval)
        )

    def keep_only(self, nodes: Iterable[str]) -> None:
        """Forget peers that are no longer members (their Lease is gone)."""
        keep = set(nodes)
        for name in [n for n in self._peers if n not in keep]:
            del self._peers[name]

    def next_change(self, now: float) -> float | None:
        """The earliest time after ``now`` at which ``down`` can change with no new input: a
        peer's down interval running out, or its hold-down ending. None when nothing is due."""
        due = [self._held_until] if self._held_until > now else []
        for peer in self._peers.values():
            silent_at = peer.last + down_interval(peer.interval)
            if silent_at > now:
                due.append(silent_at)
            if peer.held and peer.run_start + self.hold > now:
                due.append(peer.run_start + self.hold)
        return min(due, default=None)
