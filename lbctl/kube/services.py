"""The one place that reads Service and Node objects: raw API dicts → plain values (pure).

Annotations, ports, traffic policy and IP families are read here and nowhere else. Input is
untrusted: anything malformed becomes ``ServiceRequest.problem``, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbctl import election, ipam
from lbctl.allocator import FamilyPolicy, Port, ServiceKey, ServiceRequest

LB_CLASS = "lbctl.io/l2"
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
ANN_ALLOCATED_FROM = "lbctl.io/allocated-from-pool"
ANN_FENCE = "lbctl.io/leader-term"  # written by a new leader on Services still without an address

# Ours first; MetalLB's names are accepted so its users switch without editing Services.
PREFIXES = ("lbctl.io/", "metallb.io/", "metallb.universe.tf/")
ANN_IPS = "loadBalancerIPs"
ANN_POOL = "address-pool"
ANN_SHARING = "allow-shared-ip"
MAX_ANNOTATION = 1024  # longer values are refused, not parsed

Obj = Mapping[str, Any]


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def key_of(obj: Obj) -> ServiceKey:
    meta = _dict(obj.get("metadata"))
    return ServiceKey(f"{meta.get('namespace', '')}/{meta.get('name', '')}")


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _str_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def deleting(obj: Obj) -> bool:
    return bool(_dict(obj.get("metadata")).get("deletionTimestamp"))


@dataclass(frozen=True)
class Handling:
    """Whether we handle a Service: ``class_less`` is the setting for Services with no class."""

    lb_class: str = LB_CLASS
    class_less: bool = True

    def handles(self, obj: Obj) -> bool:
        spec = _dict(obj.get("spec"))
        if spec.get("type") != "LoadBalancer":
            return False
        cls = spec.get("loadBalancerClass")
        return cls == self.lb_class if cls else self.class_less


def annotation(annotations: Mapping[str, str], name: str) -> tuple[str | None, str | None]:
    """The value of ``name`` under our prefix or MetalLB's, and which key it came from."""
    for prefix in PREFIXES:
        key = prefix + name
        if key in annotations:
            return annotations[key], key
    return None, None


def _requested_ips(
    annotations: Mapping[str, str], spec: Mapping[str, Any]
) -> tuple[tuple[ipam.IP, ...], str | None]:
    value, key = annotation(annotations, ANN_IPS)
    legacy = spec.get("loadBalancerIP") or None
    if value is not None and legacy is not None:
        return (), f"both {key} and spec.loadBalancerIP are set: use one"
    if value is None and legacy is None:
        return (), None
    text, where = (value, key) if value is not None else (str(legacy), "spec.loadBalancerIP")
    if len(text) > MAX_ANNOTATION:
        return (), f"{where} is longer than {MAX_ANNOTATION} characters"
    parts = [p.strip() for p in text.split(",") if p.strip()] if value is not None else [text]
    if not parts:
        return (), f"{where} is empty"
    ips = []
    for part in parts:
        try:
            ips.append(ipam.parse_ip(part))
        except ValueError as exc:
            return (), f"{where}: {exc}"
    if len({ip.version for ip in ips}) != len(ips):
        return (), f"{where}: at most one address per IP family"
    return tuple(ips), None


def _families(spec: Mapping[str, Any]) -> tuple[tuple[int, ...], FamilyPolicy]:
    families = tuple(
        6 if f == "IPv6" else 4 for f in _list(spec.get("ipFamilies")) if f in ("IPv4", "IPv6")
    )
    if not families:
        # Servers before dual-stack: the ClusterIP's family is the Service's family.
        cluster_ip = spec.get("clusterIP")
        families = (6,) if isinstance(cluster_ip, str) and ":" in cluster_ip else (4,)
    try:
        policy = FamilyPolicy(spec.get("ipFamilyPolicy") or FamilyPolicy.SINGLE)
    except ValueError:
        policy = FamilyPolicy.SINGLE
    return families, policy


def _ports(spec: Mapping[str, Any]) -> frozenset[Port]:
    out = set()
    for p in _list(spec.get("ports")):
        p = _dict(p)
        port = p.get("port")
        if isinstance(port, int):
            out.add(Port(str(p.get("protocol") or "TCP"), port))
    return frozenset(out)


def current_ips(obj: Obj) -> tuple[ipam.IP, ...]:
    """The addresses in status; entries that are not addresses are ignored (and so cleared)."""
    out = []
    ingress = _list(_dict(_dict(obj.get("status")).get("loadBalancer")).get("ingress"))
    for entry in ingress:
        try:
            ip = ipam.parse_ip(str(_dict(entry).get("ip", "")))
        except ValueError:
            continue
        if ip not in out:
            out.append(ip)
    return tuple(out)


def request_of(obj: Obj, namespace: Obj | None = None) -> ServiceRequest:
    """A Service's request in plain values; never raises on malformed input.

    ``namespace``: the Service's Namespace object, whose labels a pool's namespaceSelector
    reads; None when it is not known."""
    meta = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    annotations = _str_map(meta.get("annotations"))
    problems = []
    ips, problem = _requested_ips(annotations, spec)
    if problem:
        problems.append(problem)
    pool, _ = annotation(annotations, ANN_POOL)
    sharing, _ = annotation(annotations, ANN_SHARING)
    families, policy = _families(spec)
    selector = spec.get("selector")
    return ServiceRequest(
        key=key_of(obj),
        namespace=str(meta.get("namespace", "")),
        created=str(meta.get("creationTimestamp") or ""),
        labels=_str_map(meta.get("labels")),
        families=families,
        family_policy=policy,
        requested_ips=ips,
        requested_pool=pool.strip() if pool and pool.strip() else None,
        sharing_key=sharing.strip() if sharing and sharing.strip() else None,
        ports=_ports(spec),
        cluster_traffic=spec.get("externalTrafficPolicy") != "Local",
        selector=tuple(sorted(_str_map(selector).items()))
        if isinstance(selector, Mapping)
        else None,
        current=current_ips(obj),
        problem="; ".join(problems) or None,
        namespace_labels=None if namespace is None else labels_of(namespace),
    )


def labels_of(obj: Obj) -> dict[str, str]:
    """``metadata.labels`` of any object, as strings."""
    return _str_map(_dict(obj.get("metadata")).get("labels"))


@dataclass(frozen=True)
class Announced:
    """What the speaker needs of a Service: its status addresses and traffic policy."""

    key: ServiceKey
    ips: tuple[ipam.IP, ...]
    local: bool  # externalTrafficPolicy: Local


def announced(obj: Obj, handling: Handling) -> Announced | None:
    """The addresses a handled, live Service has in status; None for any other Service."""
    if not handling.handles(obj) or deleting(obj):
        return None
    ips = current_ips(obj)
    if not ips:
        return None
    local = _dict(obj.get("spec")).get("externalTrafficPolicy") == "Local"
    return Announced(key_of(obj), ips, local)


def node_labels(node: Obj) -> tuple[str, dict[str, str]]:
    """The name and labels of a Node (or of any cluster-scoped object: a Namespace)."""
    meta = _dict(node.get("metadata"))
    return str(meta.get("name", "")), _str_map(meta.get("labels"))


def node_info(node: Obj) -> election.NodeInfo:
    """What eligibility needs of a Node: labels, deletion, conditions, taint keys."""
    meta = _dict(node.get("metadata"))
    status, spec = _dict(node.get("status")), _dict(node.get("spec"))
    conditions = {
        str(c.get("type")): str(c.get("status"))
        for c in map(_dict, _list(status.get("conditions")))
        if c.get("type")
    }
    taints = frozenset(str(t.get("key")) for t in map(_dict, _list(spec.get("taints"))))
    return election.NodeInfo(
        str(meta.get("name", "")),
        _str_map(meta.get("labels")),
        deleting=bool(meta.get("deletionTimestamp")),
        conditions=conditions,
        taints=taints,
    )


def node_addresses(node: Obj) -> dict[ipam.IP, str]:
    """InternalIP and ExternalIP addresses of a Node, which must never be handed out."""
    name = str(_dict(node.get("metadata")).get("name", ""))
    out: dict[ipam.IP, str] = {}
    for entry in _list(_dict(node.get("status")).get("addresses")):
        entry = _dict(entry)
        if entry.get("type") in ("InternalIP", "ExternalIP"):
            try:
                out[ipam.parse_ip(str(entry.get("address", "")))] = name
            except ValueError:
                continue
    return out


def desired_ingress(ips: Sequence[ipam.IP]) -> list[dict[str, str]]:
    return [{"ip": str(ip), "ipMode": "VIP"} for ip in ips]


def ingress_ips(obj: Obj) -> list[str]:
    """The status addresses as written, for comparing desired and actual status."""
    ingress = _list(_dict(_dict(obj.get("status")).get("loadBalancer")).get("ingress"))
    return [str(_dict(e).get("ip", "")) for e in ingress]
