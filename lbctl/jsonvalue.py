"""The type of JSON (and plain YAML) data as lbctl writes and reads it (pure).

Containers are the read-only ``Sequence`` and ``Mapping``, so a ``list[str]`` or a
``dict[str, str]`` is a ``JSONValue`` as it is. What a YAML loader returns is ``object``
instead (``strict_yaml``): safe loading also yields bytes, dates, sets and non-string keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JSONValue: TypeAlias = (
    bool | int | float | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)
JSONObject: TypeAlias = dict[str, JSONValue]  # one mapping being built, e.g. a manifest
