"""Random and mutated pool configs: valid ones bent out of shape, for the parser and controller."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import yaml

GOOD: dict[str, Any] = {
    "pools": [
        {
            "name": "lan",
            "addresses": ["198.51.100.200-198.51.100.250", "2001:db8:1::/64"],
            "autoAssign": True,
            "namespaces": ["default"],
            "serviceSelector": {"matchLabels": {"app": "web"}},
            "priority": 1,
        },
        {"name": "spare", "addresses": ["203.0.113.0/28"], "avoidBuggyIPs": True},
    ],
    "announce": {"interfaces": ["eth0"], "garp": {"rounds": 5, "intervalMs": 1100}},
    "reservations": [
        {"address": "203.0.113.5", "service": "default/web"},
        {"address": "2001:db8:1::5", "service": "default/web"},
    ],
}

ODD_VALUES: list[Any] = [
    None, 0, -1, 2**70, 1.5, "", "x" * 300, True, [], {}, [None], {"a": [1, {"b": None}]},
    "0.0.0.0/0", "::/0", "10.0.0.0/8", "fe80::1%eth0", "2001:db8::%25lo",
    "198.51.100.9-198.51.100.1", "198.51.100.1-2001:db8::1", "203.0.113.0/28", "224.0.0.1",
    "127.0.0.1", "not an address",
    "198.51.100.0/33", "2001:db8::/129", "\u0000", "é", "-", "lan", "LAN!",
]  # fmt: skip


def mutate(rng: random.Random, doc: Any, depth: int = 0) -> Any:
    """One random change somewhere in ``doc``: a value replaced, a key dropped or invented, a
    list entry duplicated (overlaps), a pool cloned with the same name."""
    if isinstance(doc, dict) and doc and depth < 6:
        key = rng.choice(sorted(doc))
        choice = rng.random()
        if choice < 0.15:
            doc.pop(key)
        elif choice < 0.25:
            invented = rng.choice(["colour", "addresses ", "Pools", "priority", "name"])
            doc[invented] = copy.deepcopy(rng.choice(ODD_VALUES))  # never share ODD_VALUES
        elif choice < 0.45:
            doc[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        else:
            doc[key] = mutate(rng, doc[key], depth + 1)
        return doc
    if isinstance(doc, list) and doc and depth < 6:
        i = rng.randrange(len(doc))
        choice = rng.random()
        if choice < 0.2:
            doc.append(copy.deepcopy(doc[i]))  # a duplicate: same name, overlapping ranges
        elif choice < 0.4:
            doc[i] = copy.deepcopy(rng.choice(ODD_VALUES))
        else:
            doc[i] = mutate(rng, doc[i], depth + 1)
        return doc
    return copy.deepcopy(rng.choice(ODD_VALUES))


def mutated_text(rng: random.Random) -> str:
    """A config text: the good one with 1-4 mutations, sometimes with its YAML mangled."""
    doc = copy.deepcopy(GOOD)
    for _ in range(rng.randint(1, 4)):
        doc = mutate(rng, doc)
    text = yaml.safe_dump(doc, allow_unicode=True)
    if rng.random() < 0.15:  # garbage YAML: a cut, a stray bracket, a tab
        cut = rng.randrange(len(text) + 1)
        text = text[:cut] + rng.choice(["", "[", "\t: :", "{{", "&a *b"]) + text[cut:]
    return text


# Known-good inputs of every kind the commands take: our config, and the sources convert reads
# (tests/data/convert holds files in the shapes users publish). Fuzzers cut and splice them.
DATA = Path(__file__).parent / "data"
SAMPLES: list[str] = [
    yaml.safe_dump(GOOD),
    *sorted(f.read_text() for f in (DATA / "convert").glob("*.yaml")),
]
