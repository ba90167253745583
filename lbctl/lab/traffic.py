"""Steady client traffic and the outages it saw: the lab's measure of a failover.

``python -m lbctl.lab.traffic URL --period 0.05 --duration 20`` (run inside the client's
namespace) sends one HTTP request per period, each on a new connection with a short timeout,
and prints one JSON line per request: ``{"t": <monotonic start>, "ok": bool, "body": ...}``.
``outages`` turns those lines into the gaps a user would have seen (pure).
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lbctl.lab import probes


@dataclass(frozen=True)
class Sample:
    t: float  # when the request started (monotonic seconds)
    ok: bool
    body: str = ""


@dataclass(frozen=True)
class Outage:
    start: float  # the last success before it
    end: float | None  # the first success after it; None: traffic never came back
    failed: int  # requests that failed in between

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start


def outages(samples: Iterable[Sample]) -> list[Outage]:
    """Each run of failed requests after a success, from the last success to the next one.

    Failures before the first success are the start-up, not an outage."""
    found: list[Outage] = []
    last_ok: float | None = None
    failed = 0
    for s in sorted(samples, key=lambda s: s.t):
        if s.ok:
            if failed and last_ok is not None:
                found.append(Outage(last_ok, s.t, failed))
            last_ok, failed = s.t, 0
        elif last_ok is not None:
            failed += 1
    if failed and last_ok is not None:
        found.append(Outage(last_ok, None, failed))
    return found


def parse(lines: Iterable[str]) -> list[Sample]:
    return [
        Sample(float(d["t"]), bool(d["ok"]), str(d.get("body", ""))) for d in probes.records(lines)
    ]


def run(url: str, period: float, duration: float, timeout: float) -> None:
    end = time.monotonic() + duration
    next_at = time.monotonic()
    while next_at < end:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body, ok = resp.read(200).decode(errors="replace").strip(), resp.status == 200
        except (OSError, http.client.HTTPException) as exc:  # refused, timed out, cut: down
            body, ok = type(exc).__name__, False
        print(json.dumps({"t": started, "ok": ok, "body": body}), flush=True)
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic())  # a slow request delays, never bunches


def main(argv: Sequence[str] | None = None) -> int:
    ap = probes.parser(__doc__, "url", period=0.05, duration=20)
    ap.add_argument("--timeout", type=float, default=0.5)
    args = ap.parse_args(argv)
    run(args.url, args.period, args.duration, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
