"""Repeated Events counted up on one object, as Kubernetes' event recorder does (pure).

client-go's ``EventCorrelator`` keys an Event by its source, involved object, type, reason and
message; when the same key comes again it patches the Event it already created (``count`` + 1,
a new ``lastTimestamp``) instead of creating another object. ``Repeats`` is that memory: it
says, for each Event to record, whether to create one or which one to count up. Bounded: the
least recently used key is forgotten first (client-go keeps 4096). No I/O, no clock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class EventKey:
    """What makes two Events the same Event (client-go's ``getEventKey``)."""

    component: str
    host: str
    kind: str
    namespace: str
    name: str
    uid: str
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class CountUp:
    """Patch the Event ``name`` to ``count`` (and a new lastTimestamp)."""

    name: str
    count: int


class Repeats:
    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._sent: OrderedDict[EventKey, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()  # writers record Events from several threads

    def next(self, key: EventKey) -> CountUp | None:
        """None: create a new Event. Else the Event to count up, its count already reserved,
        so two threads recording the same Event at once count two."""
        with self._lock:
            seen = self._sent.get(key)
            if seen is None:
                return None
            name, count = seen
            self._sent[key] = (name, count + 1)
            self._sent.move_to_end(key)
            return CountUp(name, count + 1)

    def created(self, key: EventKey, name: str) -> None:
        """An Event for ``key`` was created as ``name`` with count 1."""
        with self._lock:
            self._sent[key] = (name, 1)
            self._sent.move_to_end(key)
            while len(self._sent) > self.size:
                self._sent.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        """The Event is gone (expired after the API server's event TTL): create it anew."""
        with self._lock:
            self._sent.pop(key, None)
