"""``reservations:`` entries for ``lbctl convert``, from how MetalLB and kube-vip users pin an
address to one Service today (pure).

Called once the pools are final, with the Service objects found in the same input (``kubectl
get svc -A -o yaml`` appended to the configuration). A reservation is written only where the
input shows for certain that a Service owns an address; elsewhere a note says how to add one.

- **MetalLB**: a pool of a single address with ``auto-assign: false`` (``autoAssign: false``
  in resources), asked for by exactly one Service (``loadBalancerIPs`` annotation,
  ``spec.loadBalancerIP``, or an ``address-pool`` annotation naming it), becomes a reservation
  of that address for that Service. The config alone cannot say which Service that is: with no
  Services in the input, a note says how to write the entry.
- **kube-vip**: a user pins an address with ``kube-vip.io/loadbalancerIPs`` (which lbctl does not
  read) or ``spec.loadBalancerIP``. But kube-vip-cloud-provider, when it allocates, writes both
  (the annotation, and ``spec.loadBalancerIP`` = its first address) on every Service, so a
  Service carrying both cannot be told from an automatic one: no reservation, a note (lbctl keeps
  its address all the same: it reads ``spec.loadBalancerIP``). One of the two alone is the
  user's: a reservation, so the Service keeps its address with no edit, and across delete and
  recreate.

What cannot be a reservation is left as it is, with a note: an address asked for by two
Services (a reservation is one Service's alone), outside every pool, or in a pool lbctl would
refuse the Service. Every entry returned passes ``config.parse`` beside ``pools``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lbctl import config, ipam
from lbctl.convert.model import names
from lbctl.jsonvalue import JSONValue

KUBE_VIP_IPS = "kube-vip.io/loadbalancerIPs"
METALLB_PREFIXES = ("metallb.io/", "metallb.universe.tf/")

Entry = dict[str, str]  # {"address": ..., "service": "namespace/name"}


def reservations(
    source: str,
    pools: Sequence[JSONValue],
    service_objs: Iterable[object],
    renamed: Mapping[str, str] | None = None,
) -> tuple[list[Entry], list[str]]:
    """Reservations for ``pools`` (as config.yaml lists them, valid: ``config.ConfigError``
    otherwise) and the Services of the input.

    ``renamed``: source pool name → the name convert gave it (``address-pool`` annotations
    name the source's pool). Returns the entries, in Service order, and one note each.
    """
    renamed = renamed or {}
    cfg = config.parse({"pools": list(pools)})
    wanted: dict[ipam.IP, list[str]] = {}  # address → the Services that ask for it
    notes: list[str] = []
    seen = 0  # LoadBalancer Services in the input
    unsure: list[str] = []
    for obj in service_objs:
        found = _asks(source, obj, cfg, renamed, notes, unsure)
        if found is None:
            continue
        seen += 1
        for ip in found[1]:
            wanted.setdefault(ip, []).append(found[0])
    entries: list[Entry] = []
    for ip, keys in wanted.items():
        pool = cfg.pool_of(ip)
        why = _refused(ip, keys, pool)
        if why:
            notes.append(f"{', '.join(keys)}: {ip} not reserved: {why}")
            continue
        assert pool is not None
        entries.append({"address": str(ip), "service": keys[0]})
        how = (
            f"the only address of pool {pool.name!r} (autoAssign false), which it asks for"
            if source == "metallb"
            else f"it pins it with {KUBE_VIP_IPS} or spec.loadBalancerIP"
        )
        notes.append(
            f"{keys[0]}: reservation for {ip} ({how}): it keeps the address with no "
            "annotation and across delete and recreate, and no other Service may ask for it"
        )
    if source == "metallb":
        notes += _unasked_pools(cfg, set(wanted), any_services=seen > 0)
    if unsure:
        notes.append(
            f"{len(unsure)} Service(s) not reserved: {names(unsure, quote=False)}: each carries "
            f"both {KUBE_VIP_IPS} and spec.loadBalancerIP, as kube-vip-cloud-provider writes "
            "them on every Service it gives an address, so the input cannot say that a user "
            "pinned it. lbctl keeps the address while spec.loadBalancerIP stays; to keep one "
            "across delete and recreate, add reservations: [{address: ADDRESS, service: "
            "NAMESPACE/NAME}]"
        )
    return entries, notes


def is_service(obj: object) -> bool:
    """A core v1 Service: what ``reservations`` reads, and no reader's business."""
    return _dict(obj).get("kind") == "Service" and _dict(obj).get("apiVersion") in ("v1", None)


def _asks(
    source: str,
    obj: object,
    cfg: config.PoolConfig,
    renamed: Mapping[str, str],
    notes: list[str],
    unsure: list[str],
) -> tuple[str, list[ipam.IP]] | None:
    """A LoadBalancer Service's key and the addresses it asks for that a reservation could
    keep; None for any other object. ``unsure``: Services (and addresses) that may carry what
    kube-vip-cloud-provider wrote rather than what their user asked for."""
    meta, spec = _dict(_dict(obj).get("metadata")), _dict(_dict(obj).get("spec"))
    if _dict(obj).get("kind") != "Service" or spec.get("type") != "LoadBalancer":
        return None
    key = f"{meta.get('namespace')}/{meta.get('name')}"
    annotations = {str(k): str(v) for k, v in _dict(meta.get("annotations")).items()}
    texts = [str(spec["loadBalancerIP"])] if spec.get("loadBalancerIP") else []
    prefixes = METALLB_PREFIXES if source == "metallb" else ()
    keys = [p + "loadBalancerIPs" for p in prefixes] if prefixes else [KUBE_VIP_IPS]
    annotated = [
        t.strip() for name in keys if name in annotations for t in annotations[name].split(",")
    ]
    annotated = [t for t in annotated if t]
    if source == "kube-vip" and texts and annotated:
        unsure.append(f"{key} ({', '.join(annotated)})")  # maybe nobody's choice
        return key, []
    texts += annotated
    asked: list[ipam.IP] = []
    for text in dict.fromkeys(texts):
        try:
            asked.append(ipam.parse_ip(text))
        except ValueError as exc:
            notes.append(f"{key}: {exc}: not reserved")
    if source == "metallb":
        pool_names = [annotations[k] for p in prefixes if (k := p + "address-pool") in annotations]
        if not asked and pool_names:
            pool = cfg.pool(renamed.get(pool_names[0], pool_names[0]))
            single = _single_address(pool) if pool is not None else None
            asked = [single] if single is not None else []
        asked = [ip for ip in asked if _is_single_manual(cfg.pool_of(ip))]
    if asked and not _valid_key(meta):
        notes.append(f"{key}: not a namespace/name lbctl can reserve for: not reserved")
        return key, []
    if len({ip.version for ip in asked}) != len(asked):
        notes.append(f"{key}: asks for two addresses of one family: not reserved")
        return key, []
    return key, asked


def _refused(ip: ipam.IP, keys: list[str], pool: config.Pool | None) -> str | None:
    """Why ``ip`` cannot be reserved for ``keys``, or None."""
    if len(keys) > 1:
        return "a reservation keeps an address for one Service, and these share it"
    if pool is None:
        return "it is in no pool, and lbctl gives no address outside its pools"
    why = config.namespace_refusal(pool, keys[0].split("/", 1)[0])
    if why:
        return why
    if pool.avoid_buggy_ips and ipam.is_buggy(ip):
        return f"it ends in .0 or .255 and pool {pool.name!r} avoids those"
    return None


def _unasked_pools(cfg: config.PoolConfig, asked: set[ipam.IP], any_services: bool) -> list[str]:
    """Single-address manual pools no Service of the input asks for: how to reserve them."""
    lonely = [
        (p.name, ip)
        for p in cfg.pools
        if _is_single_manual(p) and (ip := _single_address(p)) is not None and ip not in asked
    ]
    if not lonely:
        return []
    if not any_services:
        shown = ", ".join(f"{name!r} ({ip})" for name, ip in lonely)
        return [
            f"pools {shown} hold one address each with autoAssign false, MetalLB's way to keep "
            "an address for one Service: add the Services to the input (kubectl get svc -A -o "
            "yaml) and convert writes a reservation for each that asks for one"
        ]
    return [
        f"pool {name!r} holds only {ip} with autoAssign false, but no Service in the input asks "
        f"for it: to keep it for one, add reservations: [{{address: {ip}, service: "
        "NAMESPACE/NAME}]"
        for name, ip in lonely
    ]


def _single_address(pool: config.Pool) -> ipam.IP | None:
    if pool.size(4) + pool.size(6) != 1:
        return None
    return pool.ranges[0].ip(pool.ranges[0].first)


def _is_single_manual(pool: config.Pool | None) -> bool:
    return pool is not None and not pool.auto_assign and _single_address(pool) is not None


def _valid_key(meta: Mapping[str, object]) -> bool:
    namespace, name = meta.get("namespace"), meta.get("name")
    return (
        isinstance(namespace, str)
        and isinstance(name, str)
        and bool(config.DNS1123_LABEL.match(namespace))
        and bool(config.DNS1035_LABEL.match(name))
    )


def _dict(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}
