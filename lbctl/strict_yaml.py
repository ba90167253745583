"""YAML text → Python values, strictly, with one-line errors that say where (pure).

Safe loading only. A mapping that holds a key twice is an error: Kubernetes (``kubectl apply``),
MetalLB (``yaml.UnmarshalStrict``) and the API server refuse it, while PyYAML alone would keep
the last value and hide the mistake. PyYAML's other failures on hostile text (a timestamp with
month 13, nesting too deep) become the same one-line ``YamlError``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

import yaml

# What PyYAML raises on hostile text besides YAMLError (e.g. ValueError for "2020-13-45").
_FAILURES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)
_LINE_BREAKS = re.compile("[\r\n\x85\u2028\u2029]+")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """The text is not valid YAML; ``detail`` is one line: ``not valid YAML at line L, ...``."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (merge keys ``<<`` aside)."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, object]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = seen.get(key)
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if earlier is not None:
                first = earlier.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {_shown_key(key)} (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _shown_key(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def load(text: str) -> object:
    """One YAML document (None when empty), or ``YamlError``.

    ``object``: safe loading gives None, bool, int, float, str, bytes, dates, lists, sets and
    dicts (keys any hashable of those); the caller checks the shape it needs."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except _FAILURES as exc:
        raise YamlError(_detail(exc)) from None


def load_all(text: str) -> list[object]:
    """Every document of a multi-document stream, or ``YamlError``."""
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))
    except _FAILURES as exc:
        raise YamlError(_detail(exc)) from None


def _detail(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "not valid YAML: nested too deeply"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"not valid YAML{where}: {one_line(str(problem))}"


def one_line(text: str) -> str:
    """Text fit for one line of a message or a YAML comment: no line breaks, nothing a YAML
    reader refuses."""
    return yaml.reader.Reader.NON_PRINTABLE.sub("?", _LINE_BREAKS.sub(" ", text))
