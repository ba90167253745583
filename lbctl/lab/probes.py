"""What the lab's probes (``arpwatch``, ``traffic``) share: their command line and their output.

Run inside the client's namespace, a probe asks a target every ``--period`` seconds for
``--duration`` seconds and prints one JSON object per line, one line per probe; the tests read
those lines back (``records``, pure).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from typing import TypedDict


def parser(doc: str, target: str, *, period: float, duration: float) -> argparse.ArgumentParser:
    """``TARGET [--period S] [--duration S]`` (seconds, with these defaults), for the probe to
    add its own options to. ``doc``: the probe's module docstring (its first line says what)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument(target)
    ap.add_argument("--period", type=float, default=period)
    ap.add_argument("--duration", type=float, default=duration)
    return ap


class Record(TypedDict, total=False):
    """One probe's line: ``traffic`` writes t, ok, body; ``arpwatch`` writes t, macs."""

    t: float  # when the probe was sent, in seconds of the probe's monotonic clock
    ok: bool
    body: str  # what the target answered
    macs: list[str]  # the MAC addresses that answered


def records(lines: Iterable[str]) -> Iterator[Record]:
    """The object on each line; a blank line, or the last one cut short when the probe was
    stopped, is skipped."""
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue
