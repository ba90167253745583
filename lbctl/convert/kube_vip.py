"""kube-vip-cloud-provider's ``kubevip`` ConfigMap → pool drafts (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lbctl import config
from lbctl.convert.inputs import data_of, pick, single
from lbctl.convert.model import ConvertError, Draft, Entry, Source, show, type_name

KUBE_VIP_CONFIG_MAP = "kubevip"
KUBE_VIP_KEY = re.compile(r"^(cidr|range|allow-share|interface)-([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)$")
KUBE_VIP_GLOBAL = "global"
KUBE_VIP_DHCP = "0.0.0.0/32"  # kube-vip's marker for "ask DHCP for an address"
# kube-vip never falls back from a namespace's pool to the global one; the nearest we can do
# is to try the namespace's pool first.
NAMESPACE_PRIORITY = 0
GLOBAL_PRIORITY = 10


def read(objects: list[Any], notes: list[str]) -> Source:
    expected = "kube-vip's ConfigMap 'kubevip' (keys cidr-*/range-*) or its data mapping"
    cm = pick(objects, "kube-vip", _is_kube_vip_configmap, expected)
    if cm is not None:
        data = data_of(cm)
    else:
        data = single(objects, expected)
        if not isinstance(data, dict):
            raise ConvertError(f"expected {expected}, not {type_name(data)}")
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
            notes.append(f"unknown key {show(key)} ignored")
    trim = values.get("skip-end-ips-in-cidr") == "true"
    drafts = _kube_vip_pools(cidrs, ranges, trim, notes)
    _kube_vip_sharing(shares, notes)
    return Source(drafts, _kube_vip_interfaces(interfaces, notes))


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
            problems.append(f"key {show(key)}: keys must be strings")
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[key] = str(value)
        else:
            problems.append(f"{show(key)}: must be a string, not {type_name(value)}")
    if problems:
        raise ConvertError(problems)
    return values


def _kube_vip_pools(
    cidrs: dict[str, str], ranges: dict[str, str], trim: bool, notes: list[str]
) -> list[Draft]:
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
    drafts: list[Draft] = []
    for ns in order:
        kind, value = effective[ns]
        key = f"{kind}-{ns}"
        entries = []
        for part in (p.strip() for p in value.split(",")):
            if part == KUBE_VIP_DHCP:
                notes.append(f"{key}: {KUBE_VIP_DHCP} (DHCP) left out: lbctl has no DHCP")
            elif part:
                entries.append(Entry(part, trim_ends=trim and kind == "cidr"))
        is_global = ns == KUBE_VIP_GLOBAL
        drafts.append(
            Draft(
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
            notes.append(f"allow-share-{ns}: {show(value)} is not a boolean (kube-vip: false)")
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
        notes.append(f"interface-global: addresses are announced on {show(name)} only")
        return [name]
    for ns in sorted(interfaces):
        notes.append(
            f"interface-{ns} not carried over: lbctl has one interface list for every address "
            "and by default answers on the interface whose subnet holds the address"
        )
    return []
