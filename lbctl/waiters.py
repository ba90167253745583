"""Services waiting for an address, by what they wait for; whom a change wakes (pure).

A Service that lacks an address because of other Services (an address it asked for is held by
one it may not share with; its pools are full) is recorded here with its ``allocator.Wait``.
When addresses change hands (``Allocator.take_touched``) the controller asks whom that could
unblock, and re-decides only those: thousands of pending Services cost nothing when an unrelated
Service changes. Everything else a Service can be pending for changes only with the Service
itself, the config or the Nodes, and each of those re-decides it anyway.

- A change of an address's holders (one left, one came, one changed its sharing key, ports,
  traffic policy or selector) wakes the Services that asked for that address, and the Services
  waiting for a full pool that could share an address under one of its holders' sharing keys.
- An address freed in a full pool (and reserved for nobody) is handed to that pool's waiters
  one at a time, oldest first: the oldest is woken, and only once it has been decided, if the
  pool still has a free address of that family, the next one is. A freed address costs one
  decision, not one per waiter.

No I/O, no clock; the controller calls it under its lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable

from lbctl import ipam
from lbctl.allocator import Allocator, PoolFamily, ServiceKey, Wait

K = ServiceKey
Age = tuple[str, str]  # ServiceRequest.age: (creationTimestamp, key), oldest first


class Waiters:
    def __init__(self) -> None:
        self._waits: dict[K, tuple[Age, Wait]] = {}
        self._by_address: dict[ipam.IP, set[K]] = {}
        self._by_sharing: dict[str, set[K]] = {}
        self._by_pool: dict[PoolFamily, list[tuple[Age, K]]] = {}  # sorted, oldest first
        self._handoff: dict[PoolFamily, tuple[Age, K]] = {}  # the waiter woken for a free address

    def __len__(self) -> int:
        return len(self._waits)

    def __contains__(self, key: object) -> bool:
        return key in self._waits

    def record(self, key: K, age: Age, wait: Wait | None) -> list[PoolFamily]:
        """Record what ``key`` waits for after a decision (None: nothing, or gone).

        Returns the hand-offs that were waiting for this decision: for each, the caller says
        with ``advance`` whether the pool still has a free address for the next waiter.
        """
        old = self._waits.pop(key, None)
        if old is not None:
            old_age, old_wait = old
            for ip in old_wait.addresses:
                by_ip = self._by_address[ip]
                by_ip.discard(key)
                if not by_ip:
                    del self._by_address[ip]
            if old_wait.sharing_key and old_wait.pools:
                by_key = self._by_sharing[old_wait.sharing_key]
                by_key.discard(key)
                if not by_key:
                    del self._by_sharing[old_wait.sharing_key]
            for pf in old_wait.pools:
                queue = self._by_pool[pf]
                i = bisect.bisect_left(queue, (old_age, key))
                if i < len(queue) and queue[i] == (old_age, key):
                    del queue[i]
                if not queue:
                    del self._by_pool[pf]
        if wait is not None:
            self._waits[key] = (age, wait)
            for ip in wait.addresses:
                self._by_address.setdefault(ip, set()).add(key)
            if wait.sharing_key and wait.pools:
                self._by_sharing.setdefault(wait.sharing_key, set()).add(key)
            for pf in wait.pools:
                bisect.insort(self._by_pool.setdefault(pf, []), (age, key))
        return [pf for pf, (_, k) in self._handoff.items() if k == key]

    def remove(self, key: K) -> list[PoolFamily]:
        """``key`` is gone (deleted, no longer ours): as ``record(key, ..., None)``."""
        return self.record(key, ("", ""), None)

    def touched(self, ip: ipam.IP, sharing_keys: Collection[str]) -> set[K]:
        """Whom a change of ``ip``'s holders could unblock (now holding under ``sharing_keys``)."""
        woken = set(self._by_address.get(ip, ()))
        for key in sharing_keys:
            woken |= self._by_sharing.get(key, set())
        return woken

    def freed(self, pf: PoolFamily) -> K | None:
        """An address of ``pf`` became free: the waiter to wake, if no hand-off is under way
        (one under way goes on by itself: its next step finds this address free)."""
        if pf in self._handoff:
            return None
        queue = self._by_pool.get(pf)
        if not queue:
            return None
        self._handoff[pf] = queue[0]
        return queue[0][1]

    def advance(self, pf: PoolFamily, still_free: bool) -> K | None:
        """The woken waiter of ``pf`` has been decided: the next one to wake, if the pool still
        has a free address; the hand-off ends when it has none or nobody is left."""
        current = self._handoff.pop(pf, None)
        if current is None or not still_free:
            return None
        queue = self._by_pool.get(pf, [])
        i = bisect.bisect_right(queue, current)
        if i >= len(queue):
            return None
        self._handoff[pf] = queue[i]
        return queue[i][1]

    def keys(self) -> list[K]:
        return list(self._waits)


def woken(waiters: Waiters, alloc: Allocator, handoffs: Iterable[PoolFamily] = ()) -> list[K]:
    """Whom to re-decide now that ``alloc`` changed (``take_touched``) and the hand-offs in
    ``handoffs`` had their decision: first the Services that asked for a touched address, then
    the next waiter of each pool with an address free."""
    out: dict[K, None] = {}
    touched = sorted(alloc.take_touched(), key=lambda ip: (ip.version, int(ip)))
    for ip in touched:
        out.update(dict.fromkeys(sorted(waiters.touched(ip, alloc.sharing_keys(ip)))))
    for ip in touched:
        pool = (
            alloc.config.pool_of(ip)
            if alloc.config and not alloc.holders(ip) and not alloc.config.reservation_of(ip)
            else None  # still held, or kept for its reservation: no use to a pool's waiters
        )
        if pool is not None and (key := waiters.freed((pool.name, ip.version))) is not None:
            out[key] = None
    for pf in handoffs:
        if (key := waiters.advance(pf, alloc.has_free(*pf))) is not None:
            out[key] = None
    return list(out)
