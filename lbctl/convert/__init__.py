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

from typing import Any

import yaml

from lbctl import config
from lbctl.convert import kube_vip, metallb, output
from lbctl.convert.inputs import read_documents, spread_lists
from lbctl.convert.model import Conversion, ConvertError, show
from lbctl.convert.output import render
from lbctl.strict_yaml import one_line

__all__ = ["SOURCES", "Conversion", "ConvertError", "convert", "render"]

SOURCES = ("metallb", "kube-vip")


def convert(source: str, text: str) -> Conversion:
    """Convert ``text`` (a ConfigMap manifest, or MetalLB's inner config) from ``source``."""
    if source not in SOURCES:
        raise ConvertError(f"unknown source {show(source)}: expected one of {', '.join(SOURCES)}")
    notes: list[str] = []
    found_objects = spread_lists(read_documents(text))
    reader = metallb.read if source == "metallb" else kube_vip.read
    found = reader(found_objects, notes)
    pools = output.finish(found.drafts, notes)
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
    return Conversion(output.manifest(config_text), tuple(one_line(n) for n in notes))
