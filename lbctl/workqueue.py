"""A de-duplicating work queue of keys with delayed re-adds, for several workers (no I/O).

A key waiting in the queue is never queued twice; a key is never handed to two workers at
once; a key added again while a worker holds it is queued once more when that worker calls
``done``, so no change is lost. The clock is injected for tests.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._order: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._closed = False

    def add(self, key: K) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._order.append(key)
            self._cond.notify()

    def done(self, key: K) -> None:
        """A worker finished ``key``; if it changed meanwhile, it goes round again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)

    def add_after(self, key: K, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._delayed, (self._clock() + delay, next(self._seq), key))
            self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._order)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> K | None:
        """The next key, or None when closed or after ``timeout`` seconds with nothing.

        The caller owns the key until it calls ``done(key)``.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                while self._delayed and self._delayed[0][0] <= now:
                    self._add(heapq.heappop(self._delayed)[2])
                if self._order:
                    key = self._order.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if self._closed:
                    return None
                waits = [t - now for t in (deadline,) if t is not None]
                if self._delayed:
                    waits.append(self._delayed[0][0] - now)
                wait = max(0.0, min(waits)) if waits else None
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(wait)
