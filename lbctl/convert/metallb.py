"""MetalLB's legacy ConfigMap (up to v0.12) → pool drafts (pure)."""

from __future__ import annotations

from typing import Any

from lbctl import strict_yaml
from lbctl.convert.inputs import data_of, kinds_of, pick, single
from lbctl.convert.model import NO_BGP, ConvertError, Draft, Entry, Source, show, type_name

METALLB_CONFIG_KEY = "config"
METALLB_POOL_KEYS = frozenset(
    {"name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips", "bgp-advertisements"}
)
METALLB_BGP_KEYS = ("peers", "bgp-communities", "peer-autodiscovery")
METALLB_CRDS = frozenset(
    {"IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "Community", "BFDProfile"}
)


def read(objects: list[Any], notes: list[str]) -> Source:
    expected = "MetalLB's ConfigMap (data key 'config') or the config text itself"
    kinds = set(kinds_of(objects))
    crds = ", ".join(sorted(kinds & METALLB_CRDS))
    if crds and "ConfigMap" not in kinds:
        raise ConvertError(
            f"MetalLB custom resources ({crds}) are not converted: "
            "translate them by hand (docs/migration.md)"
        )
    cm = pick(
        objects,
        "MetalLB",
        lambda cm: isinstance(cm.get("data"), dict) and METALLB_CONFIG_KEY in cm["data"],
        expected,
    )
    if crds:
        notes.append(f"MetalLB custom resources ({crds}) in the input: not converted")
    if cm is None:
        return _metallb_config(single(objects, expected), notes)
    data = data_of(cm)
    for key in data:
        if key != METALLB_CONFIG_KEY:
            notes.append(f"ConfigMap key {show(key)} ignored: MetalLB reads only 'config'")
    inner = data[METALLB_CONFIG_KEY]
    if not isinstance(inner, str):
        raise ConvertError("data.config must be a string holding MetalLB's YAML config")
    try:
        document = strict_yaml.load(inner)
    except strict_yaml.YamlError as exc:
        raise ConvertError(f"data.config is {exc.detail}") from None
    return _metallb_config(document, notes)


def _metallb_config(doc: Any, notes: list[str]) -> Source:
    if not isinstance(doc, dict):
        raise ConvertError(
            f"a MetalLB config is a mapping with 'address-pools', not {type_name(doc)}"
        )
    for key, value in doc.items():
        if key in METALLB_BGP_KEYS:
            count = f" ({len(value)})" if isinstance(value, list | dict) else ""
            notes.append(f"{key}{count} not carried over: {NO_BGP}")
        elif key != "address-pools":
            notes.append(f"unknown key {show(key)} ignored")
    pools = doc.get("address-pools")
    if pools is None:
        raise ConvertError(["the MetalLB config has no 'address-pools'", *notes])
    if not isinstance(pools, list):
        raise ConvertError(f"address-pools must be a list, not {type_name(pools)}")
    problems: list[str] = []
    drafts: list[Draft] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(pools):
        draft = _metallb_pool(f"address-pools[{i}]", raw, seen, i, problems, notes)
        if draft is not None:
            drafts.append(draft)
    if problems:
        raise ConvertError(problems)
    return Source(drafts)


def _metallb_pool(
    where: str, raw: Any, seen: dict[str, int], i: int, problems: list[str], notes: list[str]
) -> Draft | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping, not {type_name(raw)}")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: required, a string")
        return None
    if name in seen:
        problems.append(
            f"{where}.name: duplicate pool name {show(name)} (also address-pools[{seen[name]}])"
        )
        return None
    seen[name] = i
    label = f"pool {show(name)}"
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
            f"{show(', '.join(addresses))} are left out: {NO_BGP}"
        )
        return None
    if protocol != "layer2":
        problems.append(f"{where}.protocol: {show(protocol)}: expected layer2 or bgp")
        return None
    flags: dict[str, bool] = {}
    for key, default in (("auto-assign", True), ("avoid-buggy-ips", False)):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            problems.append(f"{where}.{key}: must be true or false, not {type_name(value)}")
            return None
        flags[key] = value
    for key in raw:
        if key == "bgp-advertisements":
            notes.append(f"{label}: bgp-advertisements not carried over: {NO_BGP}")
        elif key not in METALLB_POOL_KEYS:
            notes.append(f"{label}: unknown key {show(key)} ignored")
    return Draft(
        label=label,
        name=name,
        entries=[Entry(a) for a in addresses],
        auto_assign=flags["auto-assign"],
        avoid_buggy_ips=flags["avoid-buggy-ips"],
    )
