"""What every converter shares: the pool drafts a source reader produces, the error, the notes'
text (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lbctl.strict_yaml import one_line

MAX_SHOWN = 120  # characters of user text quoted in a note or an error
NO_BGP = "lbctl announces by layer 2 (ARP/NDP) only"


class ConvertError(ValueError):
    """The input cannot be converted; ``problems`` are one line each, in input order."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        lines = [problems] if isinstance(problems, str) else problems
        self.problems = [one_line(p) for p in lines]
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Conversion:
    config_map: dict[str, Any]  # a whole v1 ConfigMap manifest holding config.yaml
    notes: tuple[str, ...]  # one line each: what was left out or changed, and why


@dataclass(frozen=True)
class Entry:
    text: str
    trim_ends: bool = False  # kube-vip skip-end-ips-in-cidr: drop an IPv4 CIDR's first and last


@dataclass
class Draft:
    """A pool as read from the source, before names and addresses are checked."""

    label: str  # how notes name it: "pool 'lan'" or "cidr-team-a"
    name: str
    entries: list[Entry]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    namespaces: list[str] = field(default_factory=list)
    priority: int = 0


@dataclass
class Source:
    """What a source reader found: pools in claim order, and the announce section if any."""

    drafts: list[Draft]
    interfaces: list[str] = field(default_factory=list)


def show(value: object) -> str:
    """User text quoted for a note, on one line and never longer than MAX_SHOWN."""
    if not isinstance(value, str):
        return type_name(value) if isinstance(value, list | dict) else repr(value)[:MAX_SHOWN]
    return repr(value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "...")


def type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
