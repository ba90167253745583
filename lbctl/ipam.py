"""Address ranges and free-address search over them, without enumerating a pool (pure).

Addresses are handled as ``ipaddress`` objects at the edges and as integers inside ranges, so an
IPv6 /64 costs what a /30 costs. Nothing here does I/O.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
K = TypeVar("K", bound=Hashable)


def parse_ip(text: str) -> IP:
    """A unicast address usable as a LoadBalancer address, or ValueError saying why not."""
    text = text.strip()
    if "%" in text:
        raise ValueError(f"{text!r}: scoped (zone) addresses cannot be LoadBalancer addresses")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    for bad, what in (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_multicast, "multicast"),
        (ip.is_link_local, "link-local"),
    ):
        if bad:
            raise ValueError(f"{text!r} is a {what} address")
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"{text!r} is the broadcast address")
    return ip


def is_address(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address at all (any kind; ``parse_ip`` says whether
    a LoadBalancer may use it)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def to_ip(version: int, value: int) -> IP:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


@dataclass(frozen=True, order=True)
class Range:
    """An inclusive range of addresses of one family, as integers."""

    version: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, ip: object) -> bool:
        return (
            isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
            and ip.version == self.version
            and self.first <= int(ip) <= self.last
        )

    def overlaps(self, other: Range) -> bool:
        return (
            self.version == other.version
            and self.first <= other.last
            and other.first <= (self.last)
        )

    def ip(self, value: int) -> IP:
        return to_ip(self.version, value)

    def __str__(self) -> str:
        first, last = self.ip(self.first), self.ip(self.last)
        if first == last:
            return str(first)
        nets = list(ipaddress.summarize_address_range(first, last))
        return str(nets[0]) if len(nets) == 1 else f"{first}-{last}"


def parse_range(text: str) -> Range:
    """``198.51.100.0/28``, ``198.51.100.10-198.51.100.20`` or a single address."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    if "/" in text:
        addr = text.split("/", 1)[0]
        if "%" in addr:
            raise ValueError(f"{text!r}: scoped (zone) addresses cannot be LoadBalancer addresses")
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a CIDR: {exc}") from None
        if net.network_address != ipaddress.ip_address(addr):
            raise ValueError(f"{text!r} has host bits set; did you mean {net}?")
        for bad, what in (
            (net.is_loopback, "loopback"),
            (net.is_multicast, "multicast"),
            (net.is_link_local, "link-local"),
        ):
            if bad:
                raise ValueError(f"{text!r} is a {what} range")
        return Range(net.version, int(net.network_address), int(net.broadcast_address))
    if "-" in text:
        start_text, end_text = (part.strip() for part in text.split("-", 1))
        start, end = parse_ip(start_text), parse_ip(end_text)
        if start.version != end.version:
            raise ValueError(f"{text!r} mixes IPv{start.version} and IPv{end.version}")
        if int(start) > int(end):
            raise ValueError(f"{text!r}: start {start} is after end {end}")
        return Range(start.version, int(start), int(end))
    ip = parse_ip(text)
    return Range(ip.version, int(ip), int(ip))


def first_overlap(ranges: Iterable[tuple[Range, str]]) -> tuple[str, str] | None:
    """The labels of two overlapping ranges, if any: sort once, compare neighbours."""
    ordered = sorted(ranges, key=lambda item: (item[0].version, item[0].first, item[0].last))
    widest: tuple[Range, str] | None = None
    for rng, label in ordered:
        if widest and widest[0].overlaps(rng):
            return widest[1], label
        if widest is None or widest[0].version != rng.version or rng.last > widest[0].last:
            widest = (rng, label)
    return None


def merge(ranges: Iterable[Range]) -> list[Range]:
    """The union of ``ranges`` as disjoint, non-adjacent ranges, IPv4 first, each ascending."""
    out: list[Range] = []
    for rng in sorted(ranges):
        last = out[-1] if out else None
        if last is not None and last.version == rng.version and rng.first <= last.last + 1:
            out[-1] = Range(rng.version, last.first, max(last.last, rng.last))
        else:
            out.append(rng)
    return out


def partition(holders: Mapping[K, Iterable[Range]]) -> list[tuple[Range, frozenset[K]]]:
    """Split overlapping sets of ranges into disjoint pieces, each with the keys that hold it.

    Pieces come in address order (IPv4 first); adjacent pieces with the same holders are one;
    addresses nobody holds are left out. O(n log n) in the number of ranges, whatever their size.
    """
    events: dict[tuple[int, int], list[tuple[K, int]]] = {}
    for key, ranges in holders.items():
        for rng in merge(ranges):
            events.setdefault((rng.version, rng.first), []).append((key, 1))
            events.setdefault((rng.version, rng.last + 1), []).append((key, -1))
    out: list[tuple[Range, frozenset[K]]] = []
    held: set[K] = set()
    start: tuple[int, int] | None = None
    for version, position in sorted(events):
        if start is not None and held and start[0] == version:
            piece, keys = Range(version, start[1], position - 1), frozenset(held)
            previous = out[-1] if out else None
            if (
                previous
                and previous[1] == keys
                and previous[0].version == version
                and (previous[0].last + 1 == piece.first)
            ):
                out[-1] = (Range(version, previous[0].first, piece.last), keys)
            else:
                out.append((piece, keys))
        for key, change in events[(version, position)]:
            if change > 0:
                held.add(key)
            else:
                held.discard(key)
        start = (version, position)
    return out


def is_buggy(ip: IP) -> bool:
    """IPv4 addresses ending in .0 or .255, which some old clients and routers mishandle."""
    return ip.version == 4 and (int(ip) & 0xFF) in (0, 255)


class UsedSet:
    """A sorted set of integers with first-free search over ranges; O(used) worst case."""

    def __init__(self, values: Iterable[int] = ()) -> None:
        self._sorted: list[int] = sorted(set(values))

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_left(self._sorted, value)
        return i < len(self._sorted) and self._sorted[i] == value

    def __len__(self) -> int:
        return len(self._sorted)

    def __iter__(self) -> Iterator[int]:
        return iter(self._sorted)

    def add(self, value: int) -> None:
        i = bisect.bisect_left(self._sorted, value)
        if i == len(self._sorted) or self._sorted[i] != value:
            self._sorted.insert(i, value)

    def discard(self, value: int) -> None:
        i = bisect.bisect_left(self._sorted, value)
        if i < len(self._sorted) and self._sorted[i] == value:
            del self._sorted[i]

    def count_in(self, rng: Range) -> int:
        return bisect.bisect_right(self._sorted, rng.last) - bisect.bisect_left(
            self._sorted, rng.first
        )

    def first_free(self, rng: Range, skip: Callable[[int], bool] = lambda _: False) -> int | None:
        """The lowest value in ``rng`` that is neither used nor skipped.

        Used values are strictly increasing, so ``used[j] - j`` never decreases: a binary search
        finds the first gap after a run of used values. The cost is O(log used) per skipped
        value, never the size of the range; ``skip`` must reject few values.
        """
        values = self._sorted
        candidate = rng.first
        while candidate <= rng.last:
            lo = bisect.bisect_left(values, candidate)
            a, b = lo, len(values)
            while a < b:
                mid = (a + b) // 2
                if values[mid] - mid > candidate - lo:
                    b = mid
                else:
                    a = mid + 1
            candidate += a - lo
            if candidate > rng.last:
                return None
            if not skip(candidate):
                return candidate
            candidate += 1
        return None
