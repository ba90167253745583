"""Migration: MetalLB's legacy or kube-vip's ``kubevip`` ConfigMap → our pool ConfigMap (pure).

Text in, a ConfigMap manifest and notes out; no I/O. Rules (docs/migration.md):

- Input the source controller itself would refuse (not YAML, wrong shape, a pool without a name
  or protocol, duplicate pool names) is a ``ConvertError`` naming the place.
- What the source accepts but lbctl cannot take is left out or changed, with one note each: BGP
  pools, peers and communities; address entries lbctl refuses (loopback, link-local, ...);
  invalid pool names (renamed to a DNS-1123 label).
- Pools may not overlap in lbctl. Pools claim addresses in output order (MetalLB: input order;
  kube-vip: namespace pools by name, then the global one); an entry loses the addresses an
  earlier entry already claimed: it is narrowed to the rest, or left out when nothing is left.
- The result always passes ``config.parse_yaml``; a conversion with no pool left is an error.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from lbctl import config, ipam, settings

SOURCES = ("metallb", "kube-vip")

CONFIG_MAP_NAME: str = settings.PoolSettings.model_fields["config_map"].default
CONFIG_MAP_NAMESPACE: str = settings.PoolSettings.model_fields["namespace"].default
MAX_INPUT_BYTES = 16 << 20  # a whole install manifest fits; this only stops a runaway input
MAX_SHOWN = 120  # characters of user text quoted in a note or an error

# What PyYAML raises on hostile text besides YAMLError (e.g. ValueError for "2020-13-45").
_YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)
_LINE_BREAKS = re.compile("[\r\n\x85\u2028\u2029]+")

METALLB_CONFIG_KEY = "config"
METALLB_POOL_KEYS = frozenset(
    {"name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips", "bgp-advertisements"}
)
METALLB_BGP_KEYS = ("peers", "bgp-communities", "peer-autodiscovery")
METALLB_CRDS = frozenset(
    {"IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "Community", "BFDProfile"}
)

KUBE_VIP_CONFIG_MAP = "kubevip"
KUBE_VIP_KEY = re.compile(r"^(cidr|range|allow-share|interface)-([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)$")
KUBE_VIP_GLOBAL = "global"
KUBE_VIP_DHCP = "0.0.0.0/32"  # kube-vip's marker for "ask DHCP for an address"
# kube-vip never falls back from a namespace's pool to the global one; the nearest we can do
# is to try the namespace's pool first.
NAMESPACE_PRIORITY = 0
GLOBAL_PRIORITY = 10
NO_BGP = "lbctl announces by layer 2 (ARP/NDP) only"


class ConvertError(ValueError):
    """The input cannot be converted; ``problems`` are one line each, in input order."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        lines = [problems] if isinstance(problems, str) else problems
        self.problems = [_one_line(p) for p in lines]
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Conversion:
    config_map: dict[str, Any]  # a whole v1 ConfigMap manifest holding config.yaml
    notes: tuple[str, ...]  # one line each: what was left out or changed, and why


@dataclass(frozen=True)
class _Entry:
    text: str
    trim_ends: bool = False  # kube-vip skip-end-ips-in-cidr: drop an IPv4 CIDR's first and last


@dataclass
class _Draft:
    """A pool as read from the source, before names and addresses are checked."""

    label: str  # how notes name it: "pool 'lan'" or "cidr-team-a"
    name: str
    entries: list[_Entry]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    namespaces: list[str] = field(default_factory=list)
    priority: int = 0


@dataclass
class _Source:
    """What a source reader found: pools in claim order, and the announce section if any."""

    drafts: list[_Draft]
    interfaces: list[str] = field(default_factory=list)


# --- entry point -------------------------------------------------------------------------


def convert(source: str, text: str) -> Conversion:
    """Convert ``text`` (a ConfigMap manifest, or MetalLB's inner config) from ``source``."""
    if source not in SOURCES:
        raise ConvertError(f"unknown source {_show(source)}: expected one of {', '.join(SOURCES)}")
    notes: list[str] = []
    objects = _objects(_documents(text))
    found = _metallb(objects, notes) if source == "metallb" else _kube_vip(objects, notes)
    pools = _finish(found.drafts, notes)
    if not pools:
        raise ConvertError(["nothing to convert: no pool with usable addresses", *notes])
    document: dict[str, Any] = {"pools": pools}
    if found.interfaces:
        document["announce"] = {"interfaces": found.interfaces}
    config_text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    try:
        config.parse_yaml(config_text)
    except config.ConfigError as exc:
        # Only a bug (or a result over the size limit) gets here: refuse to print a config
        # the controller would refuse.
        raise ConvertError(
            [
                f"the converted config is invalid: {p + ': ' if p else ''}{m}"
                for p, m in exc.problems
            ]
        ) from None
    return Conversion(_manifest(config_text), tuple(_one_line(n) for n in notes))


def render(conv: Conversion) -> str:
    """The manifest as YAML, the notes first as comments, so the output stays applyable."""
    head = "# Converted by lbctl convert.\n"
    if conv.notes:
        head += "# Not carried over or changed:\n" + "".join(
            f"#   - {_one_line(n)}\n" for n in conv.notes
        )
    return head + yaml.dump(conv.config_map, Dumper=_Dumper, sort_keys=False)


def _manifest(config_text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP_NAME, "namespace": CONFIG_MAP_NAMESPACE},
        "data": {config.CONFIG_KEY: config_text},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the embedded config.yaml) as literal blocks, for people to read."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


# --- reading the input -------------------------------------------------------------------


def _documents(text: str) -> list[Any]:
    if len(text.encode(errors="replace")) > MAX_INPUT_BYTES:
        raise ConvertError(f"the input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except _YAML_FAILURES as exc:
        raise ConvertError(_yaml_problem("the input", exc)) from None
    if not documents:
        raise ConvertError("the input is empty")
    return documents


def _yaml_problem(what: str, exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return f"{what} is not valid YAML: nested too deeply"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{what} is not valid YAML{where}: {_one_line(str(problem))}"


def _objects(documents: list[Any]) -> list[Any]:
    """The documents, with the items of a ``kind: List`` (``kubectl get -o yaml``) spread out."""
    out: list[Any] = []
    for doc in documents:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def _kinds(objects: list[Any]) -> list[str]:
    return [str(o["kind"]) for o in objects if isinstance(o, dict) and "kind" in o]


def _configmap_name(cm: Mapping[str, Any]) -> str:
    meta = cm.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return _show(name) if isinstance(name, str) else "(unnamed)"


def _pick(
    objects: list[Any], source: str, fits: Callable[[Mapping[str, Any]], bool], expected: str
) -> Mapping[str, Any] | None:
    """The one ConfigMap that holds the source's config; None when the input has no kinds."""
    kinds = _kinds(objects)
    if not kinds:
        return None
    cms = [o for o in objects if isinstance(o, dict) and o.get("kind") == "ConfigMap"]
    matching = [cm for cm in cms if fits(cm)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        names = ", ".join(_configmap_name(cm) for cm in matching)
        raise ConvertError(f"the input has {len(matching)} {source} ConfigMaps ({names}): keep one")
    if cms:
        names = ", ".join(_configmap_name(cm) for cm in cms)
        raise ConvertError(
            f"no ConfigMap in the input holds a {source} config ({expected}): {names}"
        )
    shown = ", ".join(sorted(set(kinds))[:10])
    raise ConvertError(f"the input has no ConfigMap (found {shown}); expected {expected}")


def _data(cm: Mapping[str, Any]) -> Mapping[Any, Any]:
    data = cm.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConvertError(f"ConfigMap {_configmap_name(cm)}: data must be a mapping")
    return data


def _single(objects: list[Any], expected: str) -> Any:
    if len(objects) != 1:
        raise ConvertError(f"the input has {len(objects)} documents; expected {expected}")
    return objects[0]


# --- MetalLB -----------------------------------------------------------------------------


def _metallb(objects: list[Any], notes: list[str]) -> _Source:
    expected = "MetalLB's ConfigMap (data key 'config') or the config text itself"
    kinds = set(_kinds(objects))
    crds = ", ".join(sorted(kinds & METALLB_CRDS))
    if crds and "ConfigMap" not in kinds:
        raise ConvertError(
            f"MetalLB custom resources ({crds}) are not converted: "
            "translate them by hand (docs/migration.md)"
        )
    cm = _pick(
        objects,
        "MetalLB",
        lambda cm: isinstance(cm.get("data"), dict) and METALLB_CONFIG_KEY in cm["data"],
        expected,
    )
    if crds:
        notes.append(f"MetalLB custom resources ({crds}) in the input: not converted")
    if cm is None:
        return _metallb_config(_single(objects, expected), notes)
    data = _data(cm)
    for key in data:
        if key != METALLB_CONFIG_KEY:
            notes.append(f"ConfigMap key {_show(key)} ignored: MetalLB reads only 'config'")
    inner = data[METALLB_CONFIG_KEY]
    if not isinstance(inner, str):
        raise ConvertError("data.config must be a string holding MetalLB's YAML config")
    try:
        document = yaml.safe_load(inner)
    except _YAML_FAILURES as exc:
        raise ConvertError(_yaml_problem("data.config", exc)) from None
    return _metallb_config(document, notes)


def _metallb_config(doc: Any, notes: list[str]) -> _Source:
    if not isinstance(doc, dict):
        raise ConvertError(f"a MetalLB config is a mapping with 'address-pools', not {_kind(doc)}")
    for key, value in doc.items():
        if key in METALLB_BGP_KEYS:
            count = f" ({len(value)})" if isinstance(value, list | dict) else ""
            notes.append(f"{key}{count} not carried over: {NO_BGP}")
        elif key != "address-pools":
            notes.append(f"unknown key {_show(key)} ignored")
    pools = doc.get("address-pools")
    if pools is None:
        raise ConvertError(["the MetalLB config has no 'address-pools'", *notes])
    if not isinstance(pools, list):
        raise ConvertError(f"address-pools must be a list, not {_kind(pools)}")
    problems: list[str] = []
    drafts: list[_Draft] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(pools):
        draft = _metallb_pool(f"address-pools[{i}]", raw, seen, i, problems, notes)
        if draft is not None:
            drafts.append(draft)
    if problems:
        raise ConvertError(problems)
    return _Source(drafts)


def _metallb_pool(
    where: str, raw: Any, seen: dict[str, int], i: int, problems: list[str], notes: list[str]
) -> _Draft | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping, not {_kind(raw)}")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: required, a string")
        return None
    if name in seen:
        problems.append(
            f"{where}.name: duplicate pool name {_show(name)} (also address-pools[{seen[name]}])"
        )
        return None
    seen[name] = i
    label = f"pool {_show(name)}"
    addresses = raw.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        problems.append(f"{where}.addresses: required, a non-empty list")
        return None
    if not all(isinstance(a, str) for a in addresses):
        problems.append(f"{where}.addresses: every entry must be a string")
        return None
    protocol = raw.get("protocol")
    if protocol == "bgp":
        notes.append(
            f"{label}: protocol bgp, not converted; its addresses "
            f"{_show(', '.join(addresses))} are left out: {NO_BGP}"
        )
        return None
    if protocol != "layer2":
        problems.append(f"{where}.protocol: {_show(protocol)}: expected layer2 or bgp")
        return None
    flags: dict[str, bool] = {}
    for key, default in (("auto-assign", True), ("avoid-buggy-ips", False)):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            problems.append(f"{where}.{key}: must be true or false, not {_kind(value)}")
            return None
        flags[key] = value
    for key in raw:
        if key == "bgp-advertisements":
            notes.append(f"{label}: bgp-advertisements not carried over: {NO_BGP}")
        elif key not in METALLB_POOL_KEYS:
            notes.append(f"{label}: unknown key {_show(key)} ignored")
    return _Draft(
        label=label,
        name=name,
        entries=[_Entry(a) for a in addresses],
        auto_assign=flags["auto-assign"],
        avoid_buggy_ips=flags["avoid-buggy-ips"],
    )


# --- kube-vip ----------------------------------------------------------------------------


def _kube_vip(objects: list[Any], notes: list[str]) -> _Source:
    expected = "kube-vip's ConfigMap 'kubevip' (keys cidr-*/range-*) or its data mapping"
    cm = _pick(objects, "kube-vip", _is_kube_vip_configmap, expected)
    if cm is not None:
        data = _data(cm)
    else:
        data = _single(objects, expected)
        if not isinstance(data, dict):
            raise ConvertError(f"expected {expected}, not {_kind(data)}")
    values = _kube_vip_values(data)
    cidrs: dict[str, str] = {}
    ranges: dict[str, str] = {}
    shares: dict[str, str] = {}
    interfaces: dict[str, str] = {}
    tables = {"cidr": cidrs, "range": ranges, "allow-share": shares, "interface": interfaces}
    for key, value in values.items():
        match = KUBE_VIP_KEY.match(key)
        if match and len(match.group(2)) <= 63:
            tables[match.group(1)][match.group(2)] = value
        elif key == "search-order":
            if value == "desc":
                notes.append(
                    "search-order desc not carried over: "
                    "lbctl hands out the lowest free address first"
                )
        elif key != "skip-end-ips-in-cidr":
            notes.append(f"unknown key {_show(key)} ignored")
    trim = values.get("skip-end-ips-in-cidr") == "true"
    drafts = _kube_vip_pools(cidrs, ranges, trim, notes)
    _kube_vip_sharing(shares, notes)
    return _Source(drafts, _kube_vip_interfaces(interfaces, notes))


def _is_kube_vip_configmap(cm: Mapping[str, Any]) -> bool:
    meta = cm.get("metadata")
    if isinstance(meta, dict) and meta.get("name") == KUBE_VIP_CONFIG_MAP:
        return True
    data = cm.get("data")
    return isinstance(data, dict) and any(
        isinstance(k, str) and k.startswith(("cidr-", "range-")) for k in data
    )


def _kube_vip_values(data: Mapping[Any, Any]) -> dict[str, str]:
    """ConfigMap data is strings; a hand-written mapping may say ``true`` or a number."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str):
            problems.append(f"key {_show(key)}: keys must be strings")
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[key] = str(value)
        else:
            problems.append(f"{_show(key)}: must be a string, not {_kind(value)}")
    if problems:
        raise ConvertError(problems)
    return values


def _kube_vip_pools(
    cidrs: dict[str, str], ranges: dict[str, str], trim: bool, notes: list[str]
) -> list[_Draft]:
    # kube-vip looks up cidr-<ns>, then cidr-global, and only then range-<ns>, range-global.
    effective: dict[str, tuple[str, str]] = {ns: ("cidr", v) for ns, v in cidrs.items()}
    for ns, value in ranges.items():
        shadow = ns if ns in cidrs else KUBE_VIP_GLOBAL if KUBE_VIP_GLOBAL in cidrs else None
        if shadow is None:
            effective[ns] = ("range", value)
        else:
            notes.append(
                f"range-{ns} left out: kube-vip uses cidr-{shadow} before it and never handed "
                "these addresses out; add them by hand if you want them"
            )
    order = sorted(ns for ns in effective if ns != KUBE_VIP_GLOBAL)
    if KUBE_VIP_GLOBAL in effective:
        order.append(KUBE_VIP_GLOBAL)
        if len(order) > 1:
            notes.append(
                f"namespace pools have priority {NAMESPACE_PRIORITY}, the global pool "
                f"{GLOBAL_PRIORITY}: unlike kube-vip, a Service whose namespace pool is full "
                "(or lacks its IP family) may get an address from the global pool"
            )
    drafts: list[_Draft] = []
    for ns in order:
        kind, value = effective[ns]
        key = f"{kind}-{ns}"
        entries = []
        for part in (p.strip() for p in value.split(",")):
            if part == KUBE_VIP_DHCP:
                notes.append(f"{key}: {KUBE_VIP_DHCP} (DHCP) left out: lbctl has no DHCP")
            elif part:
                entries.append(_Entry(part, trim_ends=trim and kind == "cidr"))
        is_global = ns == KUBE_VIP_GLOBAL
        drafts.append(
            _Draft(
                label=key,
                name=ns,
                entries=entries,
                avoid_buggy_ips=True,
                namespaces=[] if is_global else [ns],
                priority=GLOBAL_PRIORITY if is_global else NAMESPACE_PRIORITY,
            )
        )
    if drafts:
        notes.append(
            "avoidBuggyIPs set on every pool: kube-vip never hands out IPv4 addresses "
            "ending in .0 or .255"
        )
    if trim and cidrs:
        notes.append(
            "skip-end-ips-in-cidr: IPv4 CIDRs became ranges without their network and "
            "broadcast addresses, as kube-vip hands them out"
        )
    return drafts


def _kube_vip_sharing(shares: dict[str, str], notes: list[str]) -> None:
    for ns, value in sorted(shares.items()):
        allowed = _go_bool(value)
        if allowed is None:
            notes.append(f"allow-share-{ns}: {_show(value)} is not a boolean (kube-vip: false)")
        elif allowed:
            scope = "any namespace" if ns == KUBE_VIP_GLOBAL else f"namespace {ns}"
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


def _kube_vip_interfaces(interfaces: dict[str, str], notes: list[str]) -> list[str]:
    """interface-global alone maps to announce.interfaces; per-namespace interfaces cannot."""
    per_namespace = sorted(ns for ns in interfaces if ns != KUBE_VIP_GLOBAL)
    name = interfaces.get(KUBE_VIP_GLOBAL, "").strip()
    if not per_namespace and name and config.INTERFACE_NAME.match(name):
        notes.append(f"interface-global: addresses are announced on {_show(name)} only")
        return [name]
    for ns in sorted(interfaces):
        notes.append(
            f"interface-{ns} not carried over: lbctl has one interface list for every address "
            "and by default answers on the interface whose subnet holds the address"
        )
    return []


# --- names, addresses, overlaps ----------------------------------------------------------


def _finish(drafts: list[_Draft], notes: list[str]) -> list[dict[str, Any]]:
    """Valid unique names, parsed addresses, no overlaps: the pools as config.yaml lists them."""
    names = _names(drafts, notes)
    claimed = _Claimed()
    pools: list[dict[str, Any]] = []
    for draft, name in zip(drafts, names, strict=True):
        addresses: list[str] = []
        for entry in draft.entries:
            parsed = _parse_entry(entry, draft.label, notes)
            if parsed is None:
                continue
            rng, text = parsed
            kept, owner = claimed.take(rng, draft.label)
            if kept == [rng]:
                addresses.append(text)
                continue
            written = ", ".join(str(r) for r in kept)
            notes.append(
                f"{draft.label}: {_show(entry.text.strip())} overlaps {owner}; "
                + (f"kept {written}" if kept else "left out")
            )
            addresses.extend(str(r) for r in kept)
        if not addresses:
            notes.append(f"{draft.label}: no usable addresses left, pool left out")
            continue
        pool: dict[str, Any] = {
            "name": name,
            "addresses": addresses,
            "autoAssign": draft.auto_assign,
            "avoidBuggyIPs": draft.avoid_buggy_ips,
        }
        if draft.namespaces:
            pool["namespaces"] = list(draft.namespaces)
        if draft.priority:
            pool["priority"] = draft.priority
        pools.append(pool)
    return pools


def _names(drafts: list[_Draft], notes: list[str]) -> list[str]:
    """Valid names stay; invalid ones become labels that clash with none of them."""
    taken = {d.name for d in drafts if config.DNS1123_LABEL.match(d.name)}
    out = []
    for d in drafts:
        if d.name in taken and config.DNS1123_LABEL.match(d.name):
            out.append(d.name)
            continue
        new = _unique(_label(d.name), taken)
        taken.add(new)
        notes.append(
            f"{d.label} renamed {new!r}: pool names must be DNS-1123 labels; Services that "
            "name the pool in an address-pool annotation need the new name"
        )
        out.append(new)
    return out


def _label(name: str) -> str:
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    return text or "pool"


def _unique(name: str, taken: set[str]) -> str:
    n, candidate = 1, name
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = name[: 63 - len(suffix)].rstrip("-") + suffix
    return candidate


def _parse_entry(entry: _Entry, label: str, notes: list[str]) -> tuple[ipam.Range, str] | None:
    text = entry.text.strip()
    try:
        rng = ipam.parse_range(text)
    except ValueError as exc:
        fixed = _without_host_bits(text)
        if fixed is None:
            notes.append(f"{label}: entry left out: {_one_line(str(exc))[: MAX_SHOWN * 2]}")
            return None
        try:
            rng = ipam.parse_range(fixed)
        except ValueError as again:
            notes.append(f"{label}: entry left out: {_one_line(str(again))[: MAX_SHOWN * 2]}")
            return None
        # MetalLB and kube-vip both take the network a CIDR with host bits lies in.
        notes.append(f"{label}: {_show(text)} has host bits set; written as {fixed}")
        text = fixed
    if entry.trim_ends and "/" in text and rng.version == 4 and rng.size > 2:
        rng = ipam.Range(4, rng.first + 1, rng.last - 1)
        text = str(rng)
    return rng, text


def _without_host_bits(text: str) -> str | None:
    if "/" not in text:
        return None
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return str(net) if str(net) != text else None


class _Claimed:
    """Disjoint claimed ranges per family, sorted, each with the label of the pool holding it."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        self._owners: dict[int, list[str]] = {4: [], 6: []}

    def take(self, rng: ipam.Range, owner: str) -> tuple[list[ipam.Range], str]:
        """Claim what of ``rng`` is still free: the free parts, and who holds the rest."""
        starts, ends = self._starts[rng.version], self._ends[rng.version]
        # Disjoint and sorted by start, so ends are sorted too: the overlapping run is [lo, hi).
        lo, hi = bisect.bisect_left(ends, rng.first), bisect.bisect_right(starts, rng.last)
        holder = self._owners[rng.version][lo] if lo < hi else ""
        free = list(self._gaps(rng, lo, hi))
        for part in free:
            i = bisect.bisect_left(starts, part.first)
            starts.insert(i, part.first)
            ends.insert(i, part.last)
            self._owners[rng.version].insert(i, owner)
        return free, holder

    def _gaps(self, rng: ipam.Range, lo: int, hi: int) -> Iterator[ipam.Range]:
        cursor = rng.first
        for i in range(lo, hi):
            start, end = self._starts[rng.version][i], self._ends[rng.version][i]
            if start > cursor:
                yield ipam.Range(rng.version, cursor, start - 1)
            cursor = max(cursor, end + 1)
        if cursor <= rng.last:
            yield ipam.Range(rng.version, cursor, rng.last)


# --- small helpers -----------------------------------------------------------------------


def _show(value: object) -> str:
    """User text quoted for a note, on one line and never longer than MAX_SHOWN."""
    if not isinstance(value, str):
        return _kind(value) if isinstance(value, list | dict) else repr(value)[:MAX_SHOWN]
    return repr(value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "...")


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _one_line(text: str) -> str:
    """One comment line: no line breaks, nothing a YAML reader refuses."""
    return yaml.reader.Reader.NON_PRINTABLE.sub("?", _LINE_BREAKS.sub(" ", text))
