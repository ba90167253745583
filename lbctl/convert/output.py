"""Pool drafts → our pool config, as a ConfigMap manifest that passes our own parser (pure).

Names become DNS-1123 labels (renamed with a note); address entries lbctl refuses (loopback,
link-local, multicast) are left out with a note; a pool left without addresses is left out.
Overlaps are the readers' business: MetalLB refuses them, kube-vip's are split into pools.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml

from lbctl import config, ipam, settings
from lbctl.convert import reservations
from lbctl.convert.model import MAX_SHOWN, Conversion, ConvertError, Draft, Found, Rule
from lbctl.jsonvalue import JSONObject, JSONValue
from lbctl.strict_yaml import one_line

CONFIG_MAP_NAME: str = settings.PoolSettings.model_fields["config_map"].default
CONFIG_MAP_NAMESPACE: str = settings.PoolSettings.model_fields["namespace"].default


def conversion(
    found: Found, source: str = "metallb", service_objs: Sequence[object] = ()
) -> Conversion:
    """The manifest for ``found``, checked by the controller's own parser, with every note;
    ``reservations`` from ``service_objs`` (the input's Services) where ``source``'s users
    pinned an address to a Service."""
    notes = list(found.notes)
    renamed: dict[str, str] = {}
    pools = _pools(found.drafts, notes, plain_default=not found.interfaces, renamed=renamed)
    if not pools:
        raise ConvertError(["nothing to convert: no pool with usable addresses", *notes])
    notes.extend(found.pool_notes)
    document: JSONObject = {"pools": pools}
    if found.interfaces:
        document["announce"] = {"interfaces": list(found.interfaces)}
    entries, said = reservations.reservations(source, pools, service_objs, renamed)
    notes.extend(said)
    if entries:
        document["reservations"] = entries
    config_text = yaml.dump(document, Dumper=_Plain, sort_keys=False, default_flow_style=False)
    try:
        config.parse_yaml(config_text)
    except config.ConfigError as exc:
        # Only a bug (or a result over the size limit) gets here: refuse to print a config
        # the controller would refuse.
        raise ConvertError(
            [f"the converted config is invalid: {line}" for line in exc.lines]
        ) from None
    return Conversion(_manifest(config_text), tuple(one_line(n) for n in notes))


def render(conv: Conversion) -> str:
    """The manifest as YAML, the notes first as comments, so the output stays applyable."""
    head = "# Converted by lbctl convert.\n"
    if conv.notes:
        head += "# Not carried over or changed:\n" + "".join(
            f"#   - {one_line(n)}\n" for n in conv.notes
        )
    return head + yaml.dump(conv.config_map, Dumper=_Dumper, sort_keys=False)


def _manifest(config_text: str) -> JSONObject:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP_NAME, "namespace": CONFIG_MAP_NAMESPACE},
        "data": {config.CONFIG_KEY: config_text},
    }


class _Plain(yaml.SafeDumper):
    """No anchors and aliases (&id001) where two pools share a selector: people read this."""

    def ignore_aliases(self, data: object) -> bool:
        return True


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the embedded config.yaml) as literal blocks, for people to read."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _pools(
    drafts: list[Draft], notes: list[str], plain_default: bool, renamed: dict[str, str]
) -> list[JSONObject]:
    """The pools as config.yaml lists them, in draft order. ``plain_default``: the global
    announce section is empty, so a pool announced from every node, automatically, needs no
    policy of its own. ``renamed`` gets each source name that changed → its new name."""
    pools: list[JSONObject] = []
    for draft, name in zip(drafts, _names(drafts, notes), strict=True):
        if name != draft.name:
            renamed.setdefault(draft.name, name)
        addresses = [a for a in draft.addresses if _usable(a, draft.label, notes)]
        if not addresses:
            notes.append(f"{draft.label}: no usable addresses left, pool left out")
            continue
        pool: JSONObject = {
            "name": name,
            "addresses": addresses,
            "autoAssign": draft.auto_assign,
            "avoidBuggyIPs": draft.avoid_buggy_ips,
        }
        if draft.namespaces:
            pool["namespaces"] = list(draft.namespaces)
        if draft.namespace_selectors:
            pool["namespaceSelector"] = _one_or_list(draft.namespace_selectors)
        if draft.service_selectors:
            pool["serviceSelector"] = _one_or_list(draft.service_selectors)
        if draft.priority:
            pool["priority"] = draft.priority
        if draft.announce is False:
            pool["announce"] = False
        elif draft.announce is not True:
            rules = [_rule(r) for r in draft.announce]
            if rules != [{}] or not plain_default:
                pool["announce"] = _one_or_list(rules)
        pools.append(pool)
    return pools


def _rule(rule: Rule) -> JSONObject:
    out: JSONObject = {}
    selectors = [s for s in rule.get("nodeSelector", []) if s]
    if selectors and len(selectors) == len(rule.get("nodeSelector", [])):
        out["nodeSelector"] = _one_or_list(selectors)
    if rule.get("interfaces"):
        out["interfaces"] = list(rule["interfaces"])
    return out


def _one_or_list(items: Sequence[JSONValue]) -> JSONValue:
    return items[0] if len(items) == 1 else list(items)


def _usable(text: str, label: str, notes: list[str]) -> bool:
    try:
        ipam.parse_range(text)
    except ValueError as exc:
        notes.append(f"{label}: entry left out: {one_line(str(exc))[: MAX_SHOWN * 2]}")
        return False
    return True


def _names(drafts: list[Draft], notes: list[str]) -> list[str]:
    """Valid names stay; invalid ones become labels that clash with none of them."""
    taken = {d.name for d in drafts if config.DNS1123_LABEL.match(d.name)}
    out = []
    seen: set[str] = set()
    for d in drafts:
        if config.DNS1123_LABEL.match(d.name) and d.name not in seen:
            seen.add(d.name)
            out.append(d.name)
            continue
        new = unique(_label(d.name), taken)
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


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``, ... : the first not in ``taken``, at most 63 long."""
    n, candidate = 1, name
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = name[: 63 - len(suffix)].rstrip("-") + suffix
    return candidate
