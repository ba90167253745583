"""Pool drafts → our pool config, as a ConfigMap manifest that passes our own parser (pure).

Names become DNS-1123 labels; address entries lbctl refuses are left out; pools claim their
addresses in draft order, a later entry keeping only what is still free.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterator
from typing import Any

import yaml

from lbctl import config, ipam, settings
from lbctl.convert.model import MAX_SHOWN, Conversion, Draft, Entry, show
from lbctl.strict_yaml import one_line

CONFIG_MAP_NAME: str = settings.PoolSettings.model_fields["config_map"].default
CONFIG_MAP_NAMESPACE: str = settings.PoolSettings.model_fields["namespace"].default


def render(conv: Conversion) -> str:
    """The manifest as YAML, the notes first as comments, so the output stays applyable."""
    head = "# Converted by lbctl convert.\n"
    if conv.notes:
        head += "# Not carried over or changed:\n" + "".join(
            f"#   - {one_line(n)}\n" for n in conv.notes
        )
    return head + yaml.dump(conv.config_map, Dumper=_Dumper, sort_keys=False)


def manifest(config_text: str) -> dict[str, Any]:
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


def finish(drafts: list[Draft], notes: list[str]) -> list[dict[str, Any]]:
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
                f"{draft.label}: {show(entry.text.strip())} overlaps {owner}; "
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


def _names(drafts: list[Draft], notes: list[str]) -> list[str]:
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


def _parse_entry(entry: Entry, label: str, notes: list[str]) -> tuple[ipam.Range, str] | None:
    text = entry.text.strip()
    try:
        rng = ipam.parse_range(text)
    except ValueError as exc:
        fixed = _without_host_bits(text)
        if fixed is None:
            notes.append(f"{label}: entry left out: {one_line(str(exc))[: MAX_SHOWN * 2]}")
            return None
        try:
            rng = ipam.parse_range(fixed)
        except ValueError as again:
            notes.append(f"{label}: entry left out: {one_line(str(again))[: MAX_SHOWN * 2]}")
            return None
        # MetalLB and kube-vip both take the network a CIDR with host bits lies in.
        notes.append(f"{label}: {show(text)} has host bits set; written as {fixed}")
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
