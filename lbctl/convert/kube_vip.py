"""kube-vip-cloud-provider's ``kubevip`` ConfigMap → pool drafts (pure).

How kube-vip-cloud-provider reads it, and how each rule is kept (docs/migration.md):

- A Service in namespace N takes its address from the first key of ``cidr-N``, ``cidr-global``,
  ``range-N``, ``range-global``. So N has its own pool when its key comes before the global
  one, and then never gets a global address: the global pool admits every namespace but those
  (``namespaceSelector``, ``NotIn`` on ``kubernetes.io/metadata.name``). Keys after the one used
  are never read: left out, with a note.
- A value with ``/`` is a comma list of CIDRs, otherwise of ``start-end`` ranges; exactly
  ``0.0.0.0/32`` asks DHCP. kube-vip parses each entry with Go's ``netip`` and fails every
  Service of the namespace on a space, an empty entry (a trailing comma), a bare address in a
  range list: such a value is refused here. A range whose start is after its end adds nothing.
- kube-vip hands out the lowest free address of the value's merged set, never an IPv4 address
  ending in .0 or .255: ``avoidBuggyIPs`` and entries in address order. With
  ``skip-end-ips-in-cidr: "true"`` every IPv4 prefix of the merged set loses its first and last
  address (not a /31 or /32).
- Keys may overlap, each namespace reading its own; lbctl pools may not. The addresses are
  split by who may get them: one pool per set of keys holding them, admitting those keys'
  namespaces, so every Service may get exactly the addresses it could get before.
- ``interface-N`` (else ``interface-global``) is where kube-vip puts a Service of N: each pool
  is announced on the interfaces of the namespaces it serves; when every pool agrees on one,
  that is the global ``announce.interfaces``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from lbctl import config, ipam
from lbctl.convert import inputs
from lbctl.convert.model import ConvertError, Draft, Found, Rule, names, show, type_name

CONFIG_MAP = "kubevip"
KEY = re.compile(r"^(cidr|range|allow-share|interface)-(.+)$")
GLOBAL = "global"
DHCP = "0.0.0.0/32"  # kube-vip's marker for "ask DHCP for an address"
SKIP_END = "skip-end-ips-in-cidr"
SEARCH_ORDER = "search-order"
EXPECTED = "kube-vip's ConfigMap 'kubevip' (keys cidr-*/range-*) or its data mapping"

_DATA = TypeAdapter(dict[str, str])


@dataclass
class _Keys:
    """The ConfigMap's keys by kind and namespace (``global`` included)."""

    cidr: dict[str, str]
    range: dict[str, str]
    share: dict[str, str]
    interface: dict[str, str]

    def lookup(self, namespace: str) -> tuple[str, str] | None:
        """``(kind, owner)`` of the key a Service in ``namespace`` takes its address from."""
        for kind, table in (("cidr", self.cidr), ("range", self.range)):
            for owner in (namespace, GLOBAL):
                if owner in table:
                    return kind, owner
        return None


def read(objects: list[object]) -> Found:
    found = Found([])
    values = _values(_data(objects, found.notes))
    keys = _Keys({}, {}, {}, {})
    tables = {"cidr": keys.cidr, "range": keys.range, "allow-share": keys.share}
    tables["interface"] = keys.interface
    for key, value in values.items():
        match = KEY.match(key)
        if match and (match.group(2) == GLOBAL or config.DNS1123_LABEL.match(match.group(2))):
            tables[match.group(1)][match.group(2)] = value
        elif key == SEARCH_ORDER:
            if value == "desc":
                found.notes.append(
                    "search-order desc not carried over: lbctl hands out the lowest free "
                    "address first"
                )
        elif key != SKIP_END:
            found.notes.append(f"unknown key {show(key)} ignored (kube-vip does not read it)")
    pools, own = _pools(keys, values.get(SKIP_END) == "true", found.notes)
    found.drafts, found.interfaces = _interfaces(pools, own, keys, found.notes)
    found.pool_notes.append(
        "avoidBuggyIPs set on every pool: kube-vip never hands out IPv4 addresses "
        "ending in .0 or .255"
    )
    _sharing(keys.share, found.notes)
    _order(pools, own, values.get(SEARCH_ORDER) == "desc", found.notes)
    return found


def _data(objects: list[object], notes: list[str]) -> Mapping[object, object]:
    """The data of the one kube-vip ConfigMap, or the bare data mapping."""
    kinded = [o for o in objects if inputs.is_object(o)]
    ours = [o for o in kinded if o["kind"] == "ConfigMap" and _is_kube_vip(o)]
    if len(ours) > 1:
        shown = names([inputs.name_of(o) or "(unnamed)" for o in ours])
        raise ConvertError(f"the input has {len(ours)} kube-vip ConfigMaps ({shown}): keep one")
    unrelated = [o for o in kinded if o not in ours]
    bare = [o for o in objects if not inputs.is_object(o)]
    if ours:
        if unrelated:
            notes.append(inputs.ignored(unrelated, "kube-vip's ConfigMap"))
        return inputs.configmap_data(ours[0])
    if len(bare) == 1 and not kinded:
        if not isinstance(bare[0], dict):
            raise ConvertError(f"expected {EXPECTED}, not {type_name(bare[0])}")
        return bare[0]
    if kinded:
        found = names(sorted({inputs.describe(o) for o in kinded}), quote=False)
        raise ConvertError(
            f"no kube-vip ConfigMap in the input (found {found}); expected {EXPECTED}"
        )
    raise ConvertError(f"the input has {len(bare)} documents; expected {EXPECTED}")


def _is_kube_vip(cm: inputs.Object) -> bool:
    if inputs.name_of(cm) == CONFIG_MAP:
        return True
    data = cm.get("data")
    return isinstance(data, dict) and any(
        isinstance(k, str) and k.startswith(("cidr-", "range-")) for k in data
    )


def _values(data: Mapping[object, object]) -> dict[str, str]:
    """ConfigMap data is strings; a hand-written mapping may say ``true`` or a number."""
    scalars = {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v)
        if isinstance(v, int | float) else v
        for k, v in data.items()
    }  # fmt: skip
    try:
        return _DATA.validate_python(scalars, strict=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            if "[key]" in loc:
                problems.append(f"key {show(loc[0])}: keys must be strings")
            else:
                problems.append(f"{show(loc[0])}: must be a string, not {type_name(err['input'])}")
        raise ConvertError(problems) from None


# --- values ------------------------------------------------------------------------------


def _parse(key: str, value: str, trim: bool, notes: list[str]) -> list[ipam.Range] | str:
    """The addresses kube-vip hands out from ``value``, or why kube-vip fails on it."""
    if value == "":
        return "empty (kube-vip: pool is not specified)"
    cidrs = "/" in value
    ranges: list[ipam.Range] = []
    for part in value.split(","):
        if part == "":
            return "an empty entry (a trailing comma, or two in a row)"
        if part != part.strip() or " " in part:
            return f"{show(part)} has a space (kube-vip does not trim entries)"
        if "%" in part:
            return f"{show(part)}: a scoped address (%) cannot be a LoadBalancer address"
        try:
            ranges.extend(_cidr(part, key, notes) if cidrs else _range(part, key))
        except ValueError as exc:
            return str(exc)
    merged = ipam.merge(ranges)
    return _trimmed(merged) if trim and cidrs else merged


def _cidr(part: str, key: str, notes: list[str]) -> list[ipam.Range]:
    if "/" not in part:
        raise ValueError(
            f"{show(part)} is not a CIDR (a value with '/' is a list of CIDRs to kube-vip)"
        )
    try:
        net = ipaddress.ip_network(part, strict=False)  # kube-vip, too, takes the network
    except ValueError as exc:
        raise ValueError(f"{show(part)} is not a CIDR: {exc}") from None
    if ipaddress.ip_address(part.split("/", 1)[0]) != net.network_address:
        notes.append(f"{key}: {show(part)} has host bits set; kube-vip, and lbctl, take {net}")
    return [ipam.Range(net.version, int(net.network_address), int(net.broadcast_address))]


def _range(part: str, key: str) -> list[ipam.Range]:
    ends = part.split("-")
    if len(ends) != 2:
        bare = len(ends) == 1 and ipam.is_address(part)
        hint = f" (a bare address: write {part}-{part})" if bare else ""
        raise ValueError(f"{show(part)} is not a start-end range{hint}")
    try:
        start, end = (ipaddress.ip_address(e) for e in ends)
    except ValueError as exc:
        raise ValueError(f"{show(part)}: {exc}") from None
    if start.version != end.version or int(start) > int(end):
        return []  # netipx drops an invalid range: kube-vip hands out nothing from it
    return [ipam.Range(start.version, int(start), int(end))]


def _trimmed(merged: list[ipam.Range]) -> list[ipam.Range]:
    """skip-end-ips-in-cidr: each IPv4 prefix of the merged set without its first and last."""
    out = []
    for rng in merged:
        first, last = rng.ip(rng.first), rng.ip(rng.last)
        for net in ipaddress.summarize_address_range(first, last):
            whole = ipam.Range(net.version, int(net.network_address), int(net.broadcast_address))
            if net.version == 4 and net.prefixlen < 31:
                whole = ipam.Range(4, whole.first + 1, whole.last - 1)
            out.append(whole)
    return ipam.merge(out)


# --- pools -------------------------------------------------------------------------------


@dataclass
class _Pool:
    draft: Draft
    holders: frozenset[str]  # the namespaces (and "global") whose key holds these addresses
    ranges: list[ipam.Range]  # draft.addresses, parsed (lbctl may still refuse some)


def _pools(keys: _Keys, trim: bool, notes: list[str]) -> tuple[list[_Pool], frozenset[str]]:
    """One pool per set of keys that share addresses; each admits its keys' namespaces. Also
    the namespaces with a key of their own (they never get a global address)."""
    named = sorted((set(keys.cidr) | set(keys.range)) - {GLOBAL})
    used: dict[str, str] = {}  # holder → the key it takes addresses from
    for namespace in [*named, GLOBAL]:
        found = keys.lookup(namespace)
        if found and (found[1] == namespace or namespace == GLOBAL):
            used[namespace] = f"{found[0]}-{found[1]}"
    for kind, table in (("cidr", keys.cidr), ("range", keys.range)):
        for owner in sorted(table):
            key = f"{kind}-{owner}"
            if key not in used.values():
                instead = used.get(owner) or used.get(GLOBAL)
                notes.append(
                    f"{key} left out: kube-vip uses {instead} before it and never handed "
                    "these addresses out; add them by hand if you want them"
                )
    own = frozenset(used) - {GLOBAL}
    holders: dict[str, list[ipam.Range]] = {}
    problems = []
    for owner, key in used.items():
        value = getattr(keys, key.split("-", 1)[0])[owner]
        parsed = _parse(key, value, trim, notes)
        if isinstance(parsed, str):
            problems.append(f"{key}: {parsed}; kube-vip fails every Service it serves")
        elif value == DHCP:
            who = (
                "namespaces without a key of their own" if owner == GLOBAL else f"namespace {owner}"
            )
            notes.append(
                f"{key}: {DHCP} (DHCP) left out: lbctl has no DHCP; Services in {who} get no "
                "address from lbctl"
            )
        else:
            holders[owner] = parsed
    if problems:
        raise ConvertError(problems)
    if trim and any(k.startswith("cidr-") for k in used.values()):
        notes.append(
            f"{SKIP_END}: IPv4 CIDRs became ranges without their network and broadcast "
            "addresses, as kube-vip hands them out"
        )
    grouped: dict[frozenset[str], list[ipam.Range]] = {}
    for rng, holding in ipam.partition(holders):
        grouped.setdefault(holding, []).append(rng)
    order = sorted(grouped, key=lambda s: (GLOBAL in s, len(s), sorted(s)))
    return [_pool(who, grouped[who], own, used, notes) for who in order], own


def _pool(
    who: frozenset[str],
    ranges: list[ipam.Range],
    own: frozenset[str],
    used: Mapping[str, str],
    notes: list[str],
) -> _Pool:
    namespaces = sorted(who - {GLOBAL})
    name = "-".join([*namespaces, GLOBAL] if GLOBAL in who else namespaces)
    label = " and ".join(used[h] for h in [*namespaces, GLOBAL] if h in who)
    draft = Draft(label, name, [str(r) for r in ranges], avoid_buggy_ips=True)
    if GLOBAL in who:
        excluded = sorted(own - who)
        if excluded:
            draft.namespace_selectors = [
                {
                    "matchExpressions": [
                        {
                            "key": config.NAMESPACE_NAME_LABEL,
                            "operator": "NotIn",
                            "values": excluded,
                        }
                    ]
                }
            ]
    else:
        draft.namespaces = namespaces
    if len(who) > 1:
        notes.append(
            f"{label} share {names(draft.addresses)}: lbctl pools cannot overlap, so these are "
            f"pool {name!r}, for the namespaces of both"
        )
    return _Pool(draft, who, ranges)


def _interfaces(
    pools: list[_Pool], own: frozenset[str], keys: _Keys, notes: list[str]
) -> tuple[list[Draft], list[str]]:
    """Each pool announced on the interfaces of the namespaces it serves (kube-vip:
    ``interface-N``, else ``interface-global``, else its own default: our automatic choice)."""
    valid: dict[str, str] = {}
    for owner, name in sorted(keys.interface.items()):
        if config.INTERFACE_NAME.match(name):
            valid[owner] = name
        else:
            notes.append(
                f"interface-{owner}: {show(name)} is not an interface name: not carried over"
            )
    default = valid.get(GLOBAL)
    named_elsewhere = [n for n in valid if n != GLOBAL]
    per_pool: list[set[str | None]] = []
    for pool in pools:
        served = set(pool.holders - {GLOBAL})
        chosen = {valid.get(n, default) for n in served}
        if GLOBAL in pool.holders:
            chosen |= {valid[n] for n in named_elsewhere if n not in own}
            chosen.add(default)
        per_pool.append(chosen)
        if len(chosen) > 1:
            shown = ", ".join(sorted(c or "kube-vip's default" for c in chosen))
            notes.append(
                f"{pool.draft.label}: its Services were announced on different interfaces "
                f"({shown}); lbctl announces the pool's addresses on all of them"
            )
    agreed = {frozenset(c) for c in per_pool}
    only = next(iter(agreed)) if len(agreed) == 1 else frozenset()
    if len(only) == 1 and (everywhere := next(iter(only))) is not None:
        notes.append(f"addresses are announced on {show(everywhere)} only (interface-*)")
        return [p.draft for p in pools], [everywhere]
    for pool, chosen in zip(pools, per_pool, strict=True):
        named = sorted(c for c in chosen if c)
        if named:
            rules: list[Rule] = [{"interfaces": named}]
            if None in chosen:
                rules.append({})
            pool.draft.announce = rules
    return [p.draft for p in pools], []


def _sharing(shares: dict[str, str], notes: list[str]) -> None:
    for ns, value in sorted(shares.items()):
        allowed = _go_bool(value)
        if allowed is None:
            notes.append(f"allow-share-{ns}: {show(value)} is not a boolean (kube-vip: false)")
        elif allowed:
            scope = "any namespace" if ns == GLOBAL else f"namespace {ns}"
            notes.append(
                f"allow-share-{ns} not carried over: lbctl shares an address only between "
                f"Services with the same lbctl.io/allow-shared-ip key; add it to the Services "
                f"in {scope} that should share"
            )


def _go_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool, which kube-vip uses."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


def _order(pools: list[_Pool], own: frozenset[str], descending: bool, notes: list[str]) -> None:
    """Priorities so that every namespace tries its addresses lowest first, as kube-vip does
    (pools by their lowest address), and a note for a namespace whose pools interleave, which no
    order of pools can keep. Nothing to do when no namespace may use two pools."""
    views = {n: [p for p in pools if n in p.holders] for n in own}
    views[""] = [p for p in pools if GLOBAL in p.holders]  # namespaces without their own key
    if all(len(seen) < 2 for seen in views.values()):
        return
    for rank, pool in enumerate(sorted(pools, key=lambda p: min(p.ranges))):
        pool.draft.priority = rank
    if descending:
        return  # the search-order note already says lbctl goes upwards
    for viewer, seen in sorted(views.items()):
        tried = sorted(seen, key=lambda p: (p.draft.priority, p.draft.name))
        for version in (4, 6):
            firsts = [r.first for p in tried for r in p.ranges if r.version == version]
            if firsts != sorted(firsts):
                who = f"namespace {viewer}" if viewer else "namespaces without a key of their own"
                notes.append(
                    f"{who}: kube-vip hands out the lowest free address first; lbctl tries "
                    "pools by priority, which cannot keep that order here"
                )
                break
