"""Kubernetes label selectors (matchLabels, matchExpressions) as plain values (pure)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Operator(enum.StrEnum):
    """A matchExpressions operator, spelled as the Kubernetes API spells it
    (``LabelSelectorRequirement.operator``)."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"

    @property
    def takes_values(self) -> bool:
        """In and NotIn need a non-empty ``values``; Exists and DoesNotExist take none."""
        return self in (Operator.IN, Operator.NOT_IN)


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case Operator.IN:
                return labels.get(self.key) in self.values
            case Operator.NOT_IN:
                return labels.get(self.key) not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True)
class Selector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    @classmethod
    def of(
        cls,
        match_labels: Mapping[str, str] | None = None,
        match_expressions: tuple[tuple[str, Operator, frozenset[str]], ...] = (),
    ) -> Selector:
        reqs = [
            Requirement(k, Operator.IN, frozenset([v])) for k, v in (match_labels or {}).items()
        ]
        reqs += [Requirement(k, op, values) for k, op, values in match_expressions]
        return cls(tuple(reqs))

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator is Operator.IN and len(r.values) == 1:
                parts.append(f"{r.key}={next(iter(r.values))}")
            elif r.operator.takes_values:
                op = "in" if r.operator is Operator.IN else "notin"
                parts.append(f"{r.key} {op} ({','.join(sorted(r.values))})")
            else:
                parts.append(r.key if r.operator is Operator.EXISTS else f"!{r.key}")
        return ",".join(parts) or "(everything)"


@dataclass(frozen=True)
class AnyOf:
    """Several selectors, of which any may match: how MetalLB lists them (``serviceSelectors``,
    ``namespaceSelectors``, ``nodeSelectors``). Built from at least one selector."""

    selectors: tuple[Selector, ...] = (Selector(),)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return any(s.matches(labels) for s in self.selectors)

    @property
    def empty(self) -> bool:
        """Matches everything."""
        return any(s.empty for s in self.selectors)

    def __str__(self) -> str:
        if self.empty:
            return "(everything)"
        return " or ".join(str(s) for s in self.selectors)
