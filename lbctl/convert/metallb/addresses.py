"""MetalLB's address entries, read as MetalLB reads them, and its no-overlap rule (pure).

MetalLB (``config.ParseCIDR``, the same in the legacy ConfigMap and the resources) takes a CIDR,
whose host bits it clears, or ``start-end``; a bare address is refused ("invalid CIDR"), and so
are a range whose start is after its end and entries that overlap, within or between pools.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lbctl import ipam
from lbctl.convert.model import ConvertError, Draft, show


@dataclass
class MetalLBPool:
    """A pool as MetalLB would hold it: the draft, and where its entries came from."""

    draft: Draft
    where: str  # prefix of each entry's place: "address-pools[1].addresses"
    entries: list[str]  # as written
    converted: bool = True  # False: it only takes part in MetalLB's checks (a BGP pool)


class Unresolved(ValueError):
    """An entry that is a template variable, not an address: nobody refused it yet."""


def entry(text: str) -> tuple[ipam.Range, str, str | None]:
    """``(range, text for lbctl, note)``, or ValueError saying why MetalLB refuses ``text``."""
    if "${" in text or "{{" in text:
        raise Unresolved(
            f"{show(text)} is a template variable: convert the file after substitution "
            "(flux build kustomization, envsubst, helm template)"
        )
    if "%" in text:
        raise ValueError(f"invalid CIDR {show(text)}: MetalLB takes no zone (%)")
    if "-" not in text:
        if "/" not in text:
            raise ValueError(
                f"invalid CIDR {show(text)}: MetalLB takes a single address as a /32 or /128"
            )
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"invalid CIDR {show(text)}") from None
        rng = ipam.Range(net.version, int(net.network_address), int(net.broadcast_address))
        if ipaddress.ip_address(text.split("/", 1)[0]) == net.network_address:
            return rng, text, None
        # MetalLB takes the network a CIDR with host bits lies in (net.ParseCIDR).
        return rng, str(net), f"{show(text)} has host bits set; written as {net}"
    start_text, end_text = text.split("-", 1)
    ends = []
    for which, part in (("start", start_text), ("end", end_text)):
        try:
            ends.append(ipaddress.ip_address(part.strip()))
        except ValueError:
            raise ValueError(
                f"invalid IP range {show(text)}: invalid {which} IP {show(part)}"
            ) from None
    start, end = ends
    if start.version != end.version:
        raise ValueError(f"invalid IP range {show(text)}: it mixes IPv4 and IPv6")
    if int(start) > int(end):
        raise ValueError(
            f"invalid IP range {show(text)}: start IP {start} is after the end IP {end}"
        )
    return ipam.Range(start.version, int(start), int(end)), text, None


def check(pools: list[MetalLBPool], refuses: str, notes: list[str]) -> list[Draft]:
    """The drafts to convert, their entries as lbctl spells them; ``ConvertError`` for entries
    MetalLB refuses and for any overlap. ``refuses`` says whose rule it is, for the message."""
    problems: list[str] = []
    labelled: list[tuple[ipam.Range, str]] = []
    for pool in pools:
        pool.draft.addresses = []
        for j, text in enumerate(pool.entries):
            place = f"{pool.where}[{j}]"
            try:
                rng, written, note = entry(text)
            except Unresolved as exc:
                problems.append(f"{place}: {exc}")
                continue
            except ValueError as exc:
                problems.append(f"{place}: {exc} ({refuses} refuses it)")
                continue
            labelled.append((rng, f"{place} ({text})"))
            pool.draft.addresses.append(written)
            if note and pool.converted:
                notes.append(f"{pool.draft.label}: {note}")
    clash = ipam.first_overlap(labelled)
    if clash:
        order = {label: i for i, (_, label) in enumerate(labelled)}
        first, second = sorted(clash, key=order.__getitem__)
        problems.append(f"{second}: overlaps {first} ({refuses} refuses overlapping pools)")
    if problems:
        raise ConvertError(problems)
    return [p.draft for p in pools if p.converted]
