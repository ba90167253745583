"""When to send gratuitous announcements: rounds after takeover, then a periodic refresh (pure).

The first round goes at once; the next ``rounds - 1`` follow ``interval`` apart (more than
Linux's 1 s ``locktime``, or they would be ignored); then one every ``refresh`` seconds while
the address stays ours, because switch and neighbour tables age out (MetalLB #2910). Time is
passed in, never read.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lbctl.config import Garp

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class _Next:
    round: int  # 0-based; >= rounds means "refresh"
    epoch: int  # bumped on every takeover, so stale heap entries are skipped


class GarpSchedule(Generic[K]):
    def __init__(self, garp: Garp) -> None:
        self.garp = garp
        self._heap: list[tuple[float, int, K, _Next]] = []
        self._current: dict[K, _Next] = {}
        self._seq = itertools.count()
        self._epochs = itertools.count(1)

    def take(self, key: K, now: float) -> None:
        """``key`` became ours: start the rounds now (again, if it was ours before)."""
        nxt = _Next(0, next(self._epochs))
        self._current[key] = nxt
        heapq.heappush(self._heap, (now, next(self._seq), key, nxt))

    def drop(self, key: K) -> None:
        self._current.pop(key, None)

    def due(self, now: float) -> list[K]:
        """Keys to announce now; schedules each one's next send."""
        out: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, key, nxt = heapq.heappop(self._heap)
            if self._current.get(key) != nxt:
                continue  # dropped or taken again since
            out.append(key)
            following = _Next(nxt.round + 1, nxt.epoch)
            self._current[key] = following
            # Spaced from the actual send (now), so a late send never crowds the next one.
            if following.round < self.garp.rounds:
                at = now + self.garp.interval_ms / 1000
            elif self.garp.refresh_seconds > 0:
                at = now + self.garp.refresh_seconds
            else:
                continue
            heapq.heappush(self._heap, (at, next(self._seq), key, following))
        return out

    def next_time(self) -> float | None:
        while self._heap and self._current.get(self._heap[0][2]) != self._heap[0][3]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
