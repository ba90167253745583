"""MetalLB's legacy config (the ``config`` ConfigMap, MetalLB up to v0.12) → pool drafts (pure).

Read as MetalLB read it, with ``yaml.UnmarshalStrict``: an unknown key anywhere (``auto_assign``
for ``auto-assign``) or a wrong type refuses the whole config, and so do a pool without a name
or protocol, two pools with one name, a layer-2 pool with ``bgp-advertisements``, and any entry
``addresses.check`` refuses. The keys are those of MetalLB 0.9 to 0.12 (``bfd-profiles`` and
``peer-autodiscovery`` included); BGP sections are checked for keys and types only.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError

from lbctl.convert.metallb import addresses
from lbctl.convert.model import NO_BGP, ConvertError, Draft, Found, StrictModel, model_problems
from lbctl.convert.model import names as names_of


def _scalar_text(value: object) -> object:
    """yaml.v2 reads any scalar into a string field (``name: 2024`` is the name "2024")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_text)]


class _BgpAdvertisement(StrictModel):
    aggregation_length: int | None = Field(None, alias="aggregation-length")
    aggregation_length_v6: int | None = Field(None, alias="aggregation-length-v6")
    localpref: int | None = None
    communities: list[Text] = Field(default_factory=list)


class _Pool(StrictModel):
    name: Text = ""
    protocol: Text = ""
    addresses: list[Text] = Field(default_factory=list)
    avoid_buggy_ips: bool = Field(False, alias="avoid-buggy-ips")
    auto_assign: bool = Field(True, alias="auto-assign")
    bgp_advertisements: list[_BgpAdvertisement] = Field([], alias="bgp-advertisements")


class _Requirement(StrictModel):
    key: Text = ""
    operator: Text = ""
    values: list[Text] = Field(default_factory=list)


class _NodeSelector(StrictModel):
    match_labels: dict[Text, Text] = Field({}, alias="match-labels")
    match_expressions: list[_Requirement] = Field([], alias="match-expressions")


class _Peer(StrictModel):
    my_asn: int | None = Field(None, alias="my-asn")
    peer_asn: int | None = Field(None, alias="peer-asn")
    peer_address: Text = Field("", alias="peer-address")
    source_address: Text = Field("", alias="source-address")
    peer_port: int | None = Field(None, alias="peer-port")
    hold_time: Text = Field("", alias="hold-time")
    keepalive_time: Text = Field("", alias="keepalive-time")
    router_id: Text = Field("", alias="router-id")
    node_selectors: list[_NodeSelector] = Field([], alias="node-selectors")
    password: Text = ""
    bfd_profile: Text = Field("", alias="bfd-profile")
    ebgp_multihop: bool = Field(False, alias="ebgp-multihop")


class _BfdProfile(StrictModel):
    name: Text = ""
    receive_interval: int | None = Field(None, alias="receive-interval")
    transmit_interval: int | None = Field(None, alias="transmit-interval")
    detect_multiplier: int | None = Field(None, alias="detect-multiplier")
    echo_interval: int | None = Field(None, alias="echo-interval")
    echo_mode: bool | None = Field(None, alias="echo-mode")
    passive_mode: bool | None = Field(None, alias="passive-mode")
    minimum_ttl: int | None = Field(None, alias="minimum-ttl")


class _Config(StrictModel):
    peers: list[_Peer] = Field(default_factory=list)
    # Its keys changed between releases; not converted, so only its shape is checked.
    peer_autodiscovery: dict[Text, object] | None = Field(None, alias="peer-autodiscovery")
    bgp_communities: dict[Text, Text] = Field({}, alias="bgp-communities")
    address_pools: list[_Pool] = Field([], alias="address-pools")
    bfd_profiles: list[_BfdProfile] = Field([], alias="bfd-profiles")


def _aliases(*models: type[StrictModel]) -> set[str]:
    return {f.alias or name for m in models for name, f in m.model_fields.items()}


KEYS = _aliases(_Config, _Pool, _BgpAdvertisement, _Peer, _NodeSelector, _Requirement, _BfdProfile)
BGP_KEYS = ("peers", "bgp-communities", "peer-autodiscovery", "bfd-profiles")


def read(document: object, where: str) -> Found:
    """``document`` is the decoded config; ``where`` prefixes error places (``data.config: ``)."""
    if not isinstance(document, dict):
        kind = "nothing" if document is None else type(document).__name__
        raise ConvertError(f"{where}a MetalLB config is a mapping with 'address-pools', not {kind}")
    try:
        raw = _Config.model_validate(document)
    except ValidationError as exc:
        raise ConvertError(model_problems(exc, where, KEYS, "MetalLB")) from None
    found = Found([])
    for key in BGP_KEYS:
        value = document.get(key)
        if value:
            count = f" ({len(value)})" if isinstance(value, list | dict) else ""
            found.notes.append(f"{key}{count} not carried over: {NO_BGP}")
    if not raw.address_pools:
        raise ConvertError([f"{where}the MetalLB config has no 'address-pools'", *found.notes])
    problems: list[str] = []
    pools: list[addresses.MetalLBPool] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(raw.address_pools):
        place = f"{where}address-pools[{i}]"
        if not p.name:
            problems.append(f"{place}.name: missing pool name (MetalLB refuses it)")
        elif p.name in seen:
            problems.append(
                f"{place}.name: duplicate definition of pool {p.name!r} "
                f"(also address-pools[{seen[p.name]}]; MetalLB refuses it)"
            )
        else:
            seen[p.name] = i
        if p.protocol not in ("layer2", "bgp"):
            what = "missing protocol" if not p.protocol else f"unknown protocol {p.protocol!r}"
            problems.append(f"{place}.protocol: {what} (MetalLB refuses it)")
        if not p.addresses:
            problems.append(f"{place}.addresses: pool has no prefixes defined (MetalLB refuses it)")
        if p.protocol == "layer2" and p.bgp_advertisements:
            problems.append(
                f"{place}.bgp-advertisements: a layer2 pool cannot have bgp-advertisements "
                "(MetalLB refuses it)"
            )
        label = f"pool {p.name!r}"
        draft = Draft(label, p.name, [], p.auto_assign, p.avoid_buggy_ips)
        pools.append(
            addresses.MetalLBPool(
                draft, f"{place}.addresses", list(p.addresses), p.protocol == "layer2"
            )
        )
        if p.protocol == "bgp":
            found.notes.append(
                f"{label}: protocol bgp, not converted; its addresses "
                f"{names_of(p.addresses)} are left out: {NO_BGP}"
            )
    if problems:
        raise ConvertError(problems)
    found.drafts = addresses.check(pools, "MetalLB", found.notes)
    return found
