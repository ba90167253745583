"""Waking pending Services: what one change costs with thousands of them waiting (no server).

The controller's decision loop in-process (allocator, waiters, a de-duplicating queue), with
N Services pending on a full pool and N pending on a requested address held by a Service
without their sharing key (all on TCP/80). Three events, each timed, counted in decisions and in
Services that got an address: an unrelated Service changes; the holder of the requested address
takes their sharing key and moves to TCP/8080 (one of them may now share it: each is decided
again, since all asked for it); one address of the full pool is freed. Beside it, the old
rule: any release re-decided every pending Service, and nothing else woke any.

    python bench/waiters.py [--waiting 5000] [--out FILE]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
from dataclasses import replace
from pathlib import Path

from lbctl import config, waiters
from lbctl.allocator import Allocator, Port, ServiceKey, ServiceRequest

POOL = """
pools:
  - {name: full, addresses: [198.18.0.1/32]}
  - {name: manual, addresses: [198.18.1.1-198.18.1.2], autoAssign: false}
"""
X = ipaddress.ip_address("198.18.1.1")


def svc(name: str, age: int, **kw: object) -> ServiceRequest:
    return ServiceRequest(
        key=ServiceKey(f"bench/{name}"),
        namespace="bench",
        created=f"2026-01-01T{age // 3600:02d}:{age // 60 % 60:02d}:{age % 60:02d}Z",
        **kw,  # type: ignore[arg-type]
    )


class Loop:
    def __init__(self, wake_all: bool) -> None:
        self.alloc = Allocator(config.parse_yaml(POOL))
        self.waiters = waiters.Waiters()
        self.services: dict[ServiceKey, ServiceRequest] = {}
        self.queue: dict[ServiceKey, None] = {}
        self.decisions = 0
        self.wake_all = wake_all  # the old rule: any release wakes every pending Service

    def put(self, *reqs: ServiceRequest) -> None:
        for req in reqs:
            self.services[req.key] = req
            self.queue[req.key] = None

    def delete(self, key: ServiceKey) -> None:
        del self.services[key]
        self.queue[key] = None

    def run(self) -> None:
        while self.queue:
            key = next(iter(self.queue))
            del self.queue[key]
            req = self.services.get(key)
            if req is None:
                handoffs = self.waiters.remove(key)
                released = self.alloc.release(key)
            else:
                self.decisions += 1
                d = self.alloc.decide(replace(req, current=self.alloc.assigned(key)))
                self.queue.update(dict.fromkeys(d.evicted))
                handoffs = self.waiters.record(key, req.age, d.wait)
                released = tuple(c.ip for c in d.cleared)
            woken = waiters.woken(self.waiters, self.alloc, handoffs)
            if self.wake_all:
                woken = self.waiters.keys() if released else []
            self.queue.update(dict.fromkeys(woken))


def scenario(n: int, wake_all: bool) -> dict[str, dict[str, float]]:
    loop = Loop(wake_all)
    holder = svc("holder", 0, ports=frozenset({Port("TCP", 80)}), requested_ips=(X,))
    loop.put(holder, svc("pool-holder", 1), svc("other", 2, requested_pool="manual"))
    loop.run()
    loop.put(*(svc(f"full-{i}", 10 + i) for i in range(n)))
    loop.put(
        *(
            svc(
                f"asks-{i}",
                10 + n + i,
                ports=frozenset({Port("TCP", 80)}),
                sharing_key="k",
                requested_ips=(X,),
            )
            for i in range(n)
        )
    )
    loop.run()
    assert len(loop.waiters) == 2 * n
    out = {}
    for name, change in (
        (
            "unrelated Service changes",
            lambda: loop.put(svc("other", 2, requested_pool="manual", labels={"a": "b"})),
        ),
        (
            "holder of the requested address takes their key",
            lambda: loop.put(
                replace(holder, sharing_key="k", ports=frozenset({Port("TCP", 8080)}))
            ),
        ),
        (
            "one address of the full pool freed",
            lambda: loop.delete(ServiceKey("bench/pool-holder")),
        ),
    ):
        before, waiting = loop.decisions, len(loop.waiters)
        start = time.perf_counter()
        change()
        loop.run()
        out[name] = {
            "decisions": loop.decisions - before,
            "seconds": time.perf_counter() - start,
            "unblocked": waiting - len(loop.waiters),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiting", type=int, default=5000, help="Services pending per kind")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/waiters.json")
    args = parser.parse_args()
    lbctl = scenario(args.waiting, wake_all=False)
    floor = scenario(args.waiting, wake_all=True)
    print(f"{2 * args.waiting} Services pending")
    print(f"{'event':<52} {'lbctl: decisions, ms, unblocked':>34}   old rule")
    for name in lbctl:
        a, b = lbctl[name], floor[name]
        print(
            f"{name:<52} {a['decisions']:>8.0f} {a['seconds'] * 1000:>9.2f} {a['unblocked']:>6.0f}"
            f"   {b['decisions']:>8.0f} {b['seconds'] * 1000:>9.2f} {b['unblocked']:>6.0f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"waiting": 2 * args.waiting, "lbctl": lbctl, "wake_all": floor}, indent=2)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
