"""MetalLB's resources (v0.13 and later: IPAddressPool, L2Advertisement, ...) → pool drafts (pure).

What MetalLB does, and how it is kept (docs/migration.md):

- Addresses, ``autoAssign``, ``avoidBuggyIPs`` map one to one; entries and overlaps follow
  ``addresses.check``. ``serviceAllocation`` becomes ``namespaces``, ``namespaceSelector`` and
  ``serviceSelector`` (MetalLB's lists of selectors match when any selector does; so do ours).
- Order of preference: MetalLB first tries the pools whose ``serviceAllocation`` admits the
  Service (namespaces, namespace or service selectors), those with a priority above 0 by
  priority, then those without; then the pools without ``serviceAllocation``. The priorities
  written keep that order. A ``serviceAllocation`` that names neither namespaces nor selectors
  never admits a Service automatically (MetalLB skips such a pool): ``autoAssign: false``.
- An L2Advertisement applies to the pools it names or selects by label (every pool when it
  does neither) and becomes one announce rule of each (its nodeSelectors, its interfaces). A
  pool no L2Advertisement covers is not announced (``announce: false``), as in MetalLB; one that
  only BGPAdvertisements cover is left out, like the legacy BGP pools.
- Input MetalLB (or the API server) refuses is refused: unknown keys, wrong types, a pool
  without addresses, two pools with one name, duplicate list entries, a selector operator
  with the wrong values, resources of several namespaces (MetalLB reads only its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard, TypeVar

from pydantic import ConfigDict, Field, ValidationError

from lbctl import config
from lbctl.convert import inputs
from lbctl.convert.metallb import addresses
from lbctl.convert.model import (
    NO_BGP,
    ConvertError,
    Draft,
    Found,
    Rule,
    Selector,
    StrictModel,
    model_problems,
    names,
)
from lbctl.selectors import Selector as CheckedSelector

GROUP = "metallb.io"
POOL, L2, BGP = "IPAddressPool", "L2Advertisement", "BGPAdvertisement"
BGP_ONLY = ("BGPPeer", "Community", "BFDProfile")
# Written by MetalLB itself (status), or removed: nothing to convert.
STATUS = ("ServiceL2Status", "ServiceBGPStatus", "ConfigurationState", "AddressPool")


class _Meta(StrictModel):
    model_config = ConfigDict(extra="allow", strict=True)  # uid, managedFields, annotations...
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class _ServiceAllocation(StrictModel):
    priority: int = 0
    namespaces: list[str] = Field(default_factory=list)
    namespaceSelectors: list[config.RawSelector] = Field(default_factory=list)
    serviceSelectors: list[config.RawSelector] = Field(default_factory=list)


class _PoolSpec(StrictModel):
    addresses: list[str] = Field(min_length=1)
    autoAssign: bool = True
    avoidBuggyIPs: bool = False
    serviceAllocation: _ServiceAllocation | None = None


class _L2Spec(StrictModel):
    ipAddressPools: list[str] = Field(default_factory=list)
    ipAddressPoolSelectors: list[config.RawSelector] = Field(default_factory=list)
    nodeSelectors: list[config.RawSelector] = Field(default_factory=list)
    interfaces: list[str] = Field(default_factory=list)


class _BgpSpec(StrictModel):
    """Only which pools it covers is read; the rest is BGP, not converted."""

    model_config = ConfigDict(extra="allow", strict=True)
    ipAddressPools: list[str] = Field(default_factory=list)
    ipAddressPoolSelectors: list[config.RawSelector] = Field(default_factory=list)


class _Object(StrictModel):
    apiVersion: str
    kind: str
    metadata: _Meta
    status: object = None


class _Pool(_Object):
    spec: _PoolSpec


class _L2(_Object):
    spec: _L2Spec = _L2Spec()


class _Bgp(_Object):
    spec: _BgpSpec = _BgpSpec()


KEYS = {
    name
    for m in (_Object, _PoolSpec, _ServiceAllocation, _L2Spec, config.RawSelector)
    for name in m.model_fields
}


@dataclass
class _Advertisement:
    name: str
    selects: set[str]  # the pools it covers
    rule: Rule


def is_resource(obj: object) -> TypeGuard[inputs.Object]:
    return inputs.is_object(obj) and inputs.api_group(obj) == GROUP


def read(objects: Sequence[inputs.Object]) -> Found:
    """``objects`` are MetalLB resources (group metallb.io), in input order."""
    found = Found([])
    _one_namespace(objects)
    by_kind: dict[str, list[inputs.Object]] = {}
    for obj in objects:
        by_kind.setdefault(str(obj["kind"]), []).append(obj)
    problems: list[str] = []
    pools = [p for o in by_kind.get(POOL, []) if (p := _parse(_Pool, o, problems))]
    l2s = [a for o in by_kind.get(L2, []) if (a := _parse(_L2, o, problems))]
    bgps = [b for o in by_kind.get(BGP, []) if (b := _parse(_Bgp, o, problems))]
    if problems:
        raise ConvertError(problems)
    seen: set[str] = set()
    for p in pools:
        if p.metadata.name in seen:
            problems.append(
                f"{POOL} {p.metadata.name!r}: duplicate definition of pool (MetalLB refuses it)"
            )
        seen.add(p.metadata.name)
    l2_advs = [_advertisement(a, pools, problems) for a in l2s]
    bgp_advs = [_advertisement(a, pools, problems) for a in bgps]
    drafts = [_draft(p, problems, found.notes) for p in pools]
    if problems:
        raise ConvertError(problems)
    _order(pools, drafts, found.notes)
    checked = addresses.check(
        [
            addresses.MetalLBPool(
                d, f"{POOL} {p.metadata.name!r}: spec.addresses", p.spec.addresses
            )
            for p, d in zip(pools, drafts, strict=True)
        ],
        "MetalLB",
        found.notes,
    )
    found.drafts = _announce(checked, l2_advs, bgp_advs, found.notes)
    for kind in (BGP, *BGP_ONLY):
        objs = by_kind.get(kind, [])
        if objs:
            found.notes.append(
                f"{len(objs)} {kind} not carried over "
                f"({names([inputs.name_of(o) or '(unnamed)' for o in objs])}): {NO_BGP}"
            )
    others = [o for kind, objs in by_kind.items() if kind not in (POOL, L2, BGP, *BGP_ONLY)
              for o in objs]  # fmt: skip
    if others:
        found.notes.append(inputs.ignored(others, "MetalLB configuration (status, or removed)"))
    if not pools:
        raise ConvertError(["the input has no IPAddressPool", *found.notes])
    return found


def _one_namespace(objects: Sequence[inputs.Object]) -> None:
    spaces = sorted({ns for o in objects if (ns := inputs.namespace_of(o))})
    if len(spaces) > 1:
        raise ConvertError(
            f"the input has MetalLB resources in namespaces {names(spaces)}: MetalLB reads only "
            "those of the namespace it runs in; give the resources of that one"
        )


M = TypeVar("M", bound=_Object)


def _parse(model: type[M], obj: inputs.Object, problems: list[str]) -> M | None:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        problems.extend(model_problems(exc, f"{inputs.describe(obj)}: ", KEYS, "the API server"))
        return None


def _selectors(
    raws: list[config.RawSelector], place: str, problems: list[str]
) -> tuple[list[Selector], list[CheckedSelector]]:
    """MetalLB's selector list as ours (dicts), and checked; duplicates refused as MetalLB does."""
    checked_problems: list[tuple[str, str]] = []
    checked = [
        config.check_selector(r, f"{place}[{i}]", checked_problems) for i, r in enumerate(raws)
    ]
    problems.extend(f"{p}: {m} (MetalLB refuses it)" for p, m in checked_problems)
    dumped = [r.model_dump(exclude_defaults=True) for r in raws]
    _no_duplicates([repr(c) for c in checked], place, "selector", problems)
    return dumped, checked


def _no_duplicates(items: Sequence[str], place: str, what: str, problems: list[str]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            problems.append(f"{place}[{i}]: duplicate definition of {what} (MetalLB refuses it)")
        seen.add(item)


def _advertisement(adv: _L2 | _Bgp, pools: list[_Pool], problems: list[str]) -> _Advertisement:
    where = f"{adv.kind} {adv.metadata.name!r}: spec."
    spec = adv.spec
    _no_duplicates(spec.ipAddressPools, where + "ipAddressPools", "pool", problems)
    _, pool_selectors = _selectors(
        spec.ipAddressPoolSelectors, where + "ipAddressPoolSelectors", problems
    )
    if spec.ipAddressPools or spec.ipAddressPoolSelectors:
        selects = {p.metadata.name for p in pools if p.metadata.name in spec.ipAddressPools} | {
            p.metadata.name
            for p in pools
            if any(s.matches(p.metadata.labels) for s in pool_selectors)
        }
    else:
        selects = {p.metadata.name for p in pools}  # neither: every pool
    rule: Rule = {}
    if isinstance(spec, _L2Spec):
        node_selectors, _ = _selectors(spec.nodeSelectors, where + "nodeSelectors", problems)
        _no_duplicates(spec.interfaces, where + "interfaces", "interface", problems)
        usable = [i for i in spec.interfaces if config.INTERFACE_NAME.match(i)]
        if len(usable) < len(spec.interfaces):
            bad = [i for i in spec.interfaces if i not in usable]
            problems.append(
                f"{where}interfaces: {names(bad)} cannot be an interface name on Linux "
                "(lbctl refuses it; MetalLB would never find it)"
            )
        rule = {"nodeSelector": node_selectors, "interfaces": usable}
    return _Advertisement(adv.metadata.name, selects, rule)


def _draft(pool: _Pool, problems: list[str], notes: list[str]) -> Draft:
    name, spec = pool.metadata.name, pool.spec
    label = f"{POOL} {name!r}"
    draft = Draft(label, name, [], spec.autoAssign, spec.avoidBuggyIPs)
    allocation = spec.serviceAllocation
    if allocation is None:
        return draft
    where = f"{label}: spec.serviceAllocation."
    _no_duplicates(allocation.namespaces, where + "namespaces", "namespace", problems)
    unusable = [ns for ns in allocation.namespaces if not config.DNS1123_LABEL.match(ns)]
    draft.namespaces = [ns for ns in allocation.namespaces if ns not in unusable]
    draft.namespace_selectors, _ = _selectors(
        allocation.namespaceSelectors, where + "namespaceSelectors", problems
    )
    draft.service_selectors, _ = _selectors(
        allocation.serviceSelectors, where + "serviceSelectors", problems
    )
    if unusable:
        # No namespace can have such a name: MetalLB admits nobody by it. Our config refuses
        # the name, so it becomes a selector that matches nobody either.
        draft.namespace_selectors.append(
            {"matchExpressions": [{"key": config.NAMESPACE_NAME_LABEL, "operator": "In",
                                   "values": unusable}]}
        )  # fmt: skip
        notes.append(
            f"{label}: namespace {names(unusable)} cannot exist (not a DNS-1123 label): "
            "kept as a namespaceSelector that matches nothing, as it did in MetalLB"
        )
    if not (allocation.namespaces or allocation.namespaceSelectors or allocation.serviceSelectors):
        if draft.auto_assign:
            notes.append(
                f"{label}: a serviceAllocation without namespaces or selectors: MetalLB never "
                "assigns from this pool by itself, so autoAssign: false"
            )
        draft.auto_assign = False
    return draft


def _order(pools: list[_Pool], drafts: list[Draft], notes: list[str]) -> None:
    """Priorities that keep MetalLB's order of preference (see the module's docstring)."""
    ranked: list[tuple[Draft, int | None]] = []  # None: no serviceAllocation
    for pool, draft in zip(pools, drafts, strict=True):
        if not draft.auto_assign:
            continue
        allocation = pool.spec.serviceAllocation
        ranked.append((draft, None if allocation is None else allocation.priority))
    positive = [p for _, p in ranked if p is not None and p > 0]
    top = max(positive, default=0)
    without = [d for d, p in ranked if p is not None and p <= 0]
    unpinned = [d for d, p in ranked if p is None]
    for draft, priority in ranked:
        if priority is not None and priority > 0:
            draft.priority = priority
        elif priority is not None and priority < 0:
            notes.append(
                f"{draft.label}: priority {priority}: MetalLB's order for a priority below 0 is "
                "not defined; tried with the pools without priority"
            )
    after_positive = top + 1 if positive else 0
    for draft in without:
        draft.priority = after_positive
    if without and after_positive:
        notes.append(
            f"{names([d.label for d in without], quote=False)}: a serviceAllocation without "
            "priority: "
            f"MetalLB tries these after the pools with one, so priority {after_positive}"
        )
    last = after_positive + 1 if without else after_positive
    for draft in unpinned:
        draft.priority = last
    if unpinned and last and len(unpinned) < len(ranked):
        notes.append(
            f"{names([d.label for d in unpinned], quote=False)}: no serviceAllocation: MetalLB "
            "tries these "
            f"after every pool with one, so priority {last}"
        )


def _announce(
    drafts: list[Draft], l2s: list[_Advertisement], bgps: list[_Advertisement], notes: list[str]
) -> list[Draft]:
    """Each pool's announce rules from the L2Advertisements that cover it."""
    out = []
    for draft in drafts:
        rules: list[Rule] = []
        for adv in l2s:
            if draft.name in adv.selects and adv.rule not in rules:
                rules.append(adv.rule)
        covering_bgp = [a.name for a in bgps if draft.name in a.selects]
        if not rules and covering_bgp:
            notes.append(
                f"{draft.label}: advertised by BGP only ({BGP} {names(covering_bgp)}), not "
                f"converted; its addresses {names(draft.addresses)} are left out: {NO_BGP}"
            )
            continue
        if not rules:
            notes.append(
                f"{draft.label}: no {L2} covers it, so announce: false: its addresses are "
                "handed out but not announced, as in MetalLB"
            )
        if covering_bgp:
            notes.append(
                f"{draft.label}: its BGP advertisement ({names(covering_bgp)}) is not carried "
                f"over: {NO_BGP}"
            )
        draft.announce = rules or False
        out.append(draft)
    return out
