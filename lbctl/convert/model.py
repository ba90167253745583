"""What every converter shares: pool drafts, the error, how notes quote user text (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from lbctl import config
from lbctl.jsonvalue import JSONObject
from lbctl.strict_yaml import one_line

MAX_SHOWN = 120  # characters of user text quoted in a note or an error
NO_BGP = "lbctl announces by layer 2 (ARP/NDP) only"


class ConvertError(config.InvalidInput):
    """The input cannot be converted; ``lines`` say why, one problem each, in input order."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        lines = [problems] if isinstance(problems, str) else problems
        super().__init__([one_line(p) for p in lines])


@dataclass(frozen=True)
class Conversion:
    config_map: JSONObject  # a whole v1 ConfigMap manifest holding config.yaml
    notes: tuple[str, ...]  # one line each: what was left out or changed, and why


Selector = JSONObject  # a label selector as our config writes it (matchLabels, ...)


class Rule(TypedDict, total=False):
    """One announce rule as a reader found it; the output writes a lone selector bare."""

    nodeSelector: list[Selector]
    interfaces: list[str]


@dataclass
class Draft:
    """A pool as a source reader found it, in our terms, before names and addresses are final.

    ``addresses`` are entries the source accepts, already as lbctl spells them (a CIDR with host
    bits written as its network); the output step leaves out those lbctl refuses.
    """

    label: str  # how notes name it: "pool 'lan'", "IPAddressPool 'lan'", "cidr-team-a"
    name: str
    addresses: list[str]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    namespaces: list[str] = field(default_factory=list)
    namespace_selectors: list[Selector] = field(default_factory=list)  # any; []: not used
    service_selectors: list[Selector] = field(default_factory=list)  # any; []: every Service
    priority: int = 0
    announce: bool | list[Rule] = True  # True: the global section; False: never announced


@dataclass
class Found:
    """What a source reader found: the pools in output order, the global interfaces, notes."""

    drafts: list[Draft]
    interfaces: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Notes about every written pool: shown only when a pool is written at all.
    pool_notes: list[str] = field(default_factory=list)


def show(value: object) -> str:
    """User text quoted for a note, on one line and never longer than MAX_SHOWN."""
    if not isinstance(value, str):
        return type_name(value) if isinstance(value, list | dict) else repr(value)[:MAX_SHOWN]
    return repr(value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "...")


def type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def names(items: Sequence[str], most: int = 5, quote: bool = True) -> str:
    """``'a', 'b' and 3 more``: a list of names for a note, never unbounded."""
    shown = ", ".join(show(i) if quote else one_line(i)[:MAX_SHOWN] for i in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


class StrictModel(BaseModel):
    """A foreign format's raw shape, read as strictly as its own parser reads it: unknown keys
    and wrong types are errors; a key set to null counts as absent (as in Go and Kubernetes)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: object) -> object:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


_EXPECTED = {
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def model_problems(
    exc: ValidationError, where: str, known_keys: Iterable[str], refuses: str
) -> list[str]:
    """A foreign model's errors as lines naming the place and saying who refuses it; an
    unknown key gets a suggestion, a wrong type says what was given."""
    keys = sorted(set(known_keys))
    out = []
    for (path, message), err in zip(config.pydantic_problems(exc), exc.errors(), strict=True):
        if message == "unknown key":
            key = path.rsplit(".", 1)[-1].split("[", 1)[0]
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"unknown key ({refuses} refuses it{hint})"
        elif err["type"] in _EXPECTED:
            message = (
                f"{_EXPECTED[err['type']]}, not {type_name(err['input'])} ({refuses} refuses it)"
            )
        else:
            message = f"{message} ({refuses} refuses it)"
        out.append(f"{where}{path}: {message}")
    return out
