"""Migration: MetalLB's or kube-vip's configuration → our pool ConfigMap (pure).

Text in, a ConfigMap manifest and notes out; no I/O. The rule (docs/migration.md): the converted
config hands out the same addresses to the same Services, in the same order of preference, as
the source would. So:

- Input the source itself refuses (not YAML, a key given twice, an unknown key, a pool without
  a name or addresses, overlapping MetalLB pools, a kube-vip value it cannot parse) is a
  ``ConvertError`` that names the place and the reason.
- What the source accepts but lbctl cannot do is left out or changed, with one note each (BGP,
  DHCP, loopback entries, names that are not DNS-1123 labels, ...); a note never speaks of
  something the output does not hold.
- Services in the input (``kubectl get svc -A -o yaml`` appended) are read for the addresses
  users pin to one Service today; where that is certain, ``reservations`` keeps the address for
  it (``reservations``), and a note says so; where it is not, a note says how to add one.
- Other objects that are not the source's configuration are ignored, with a note.
- The result always passes ``config.parse_yaml``; a conversion with no pool left is an error.

``metallb`` reads MetalLB's resources and its legacy config in every shape; ``kube_vip`` the
``kubevip`` ConfigMap; ``reservations`` the Services; ``output`` writes our config.
"""

from __future__ import annotations

from lbctl.convert import kube_vip, metallb, output, reservations
from lbctl.convert.inputs import read_documents, spread_lists
from lbctl.convert.model import Conversion, ConvertError, show
from lbctl.convert.output import render

__all__ = ["SOURCES", "Conversion", "ConvertError", "convert", "render"]

SOURCES = ("metallb", "kube-vip")


def convert(source: str, text: str) -> Conversion:
    """Convert ``text`` (manifests, a List, a config text or Helm values) from ``source``."""
    if source not in SOURCES:
        raise ConvertError(f"unknown source {show(source)}: expected one of {', '.join(SOURCES)}")
    objects = spread_lists(read_documents(text))
    service_objs = [o for o in objects if reservations.is_service(o)]
    config_objs = [o for o in objects if not reservations.is_service(o)]
    found = metallb.read(config_objs) if source == "metallb" else kube_vip.read(config_objs)
    return output.conversion(found, source, service_objs)
