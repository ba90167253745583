"""The one reader of raw Kubernetes objects: API JSON → typed values (pure, no I/O).

Services, Nodes, EndpointSlices and ConfigMaps arrive from the informers (and ``lbctl status``)
as the API server's JSON. Annotations, ports, traffic policy, IP families, finalizers and
endpoint conditions are read here and nowhere else; the rest of lbctl sees the values
(``ServiceRequest``, ``Announced``, ``election.NodeInfo``). Input is untrusted: anything
malformed becomes ``ServiceRequest.problem`` or is skipped, never an exception.

The ``TypedDict`` classes give the raw shapes read (field names as in the Kubernetes API
reference, core/v1 and discovery.k8s.io/v1); they document and type the reading, but a value
may still be missing or of another type, so every read checks what it gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict, TypeVar, cast

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

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # on an EndpointSlice: the Service it serves

# A raw object as decoded from the API's JSON; the TypedDicts below say which fields we read.
# Values are ``object``, so mypy makes every read check what it got.
Obj = Mapping[str, object]


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: list[str]


class ServicePort(TypedDict, total=False):
    port: int
    protocol: str  # TCP (default), UDP, SCTP


class ServiceSpec(TypedDict, total=False):
    type: str  # LoadBalancer is ours to handle
    loadBalancerClass: str
    loadBalancerIP: str  # deprecated; still honoured
    ipFamilies: list[str]  # IPv4, IPv6
    ipFamilyPolicy: str  # SingleStack, PreferDualStack, RequireDualStack
    clusterIP: str
    ports: list[ServicePort]
    selector: dict[str, str]
    externalTrafficPolicy: str  # Cluster (default) or Local


class Ingress(TypedDict, total=False):
    ip: str
    ipMode: str  # VIP


class LoadBalancerStatus(TypedDict, total=False):
    ingress: list[Ingress]


class ServiceStatus(TypedDict, total=False):
    loadBalancer: LoadBalancerStatus


class NodeCondition(TypedDict, total=False):
    type: str
    status: str


class Taint(TypedDict, total=False):
    key: str


class NodeAddress(TypedDict, total=False):
    type: str  # InternalIP, ExternalIP, Hostname
    address: str


class NodeSpec(TypedDict, total=False):
    taints: list[Taint]


class NodeStatus(TypedDict, total=False):
    conditions: list[NodeCondition]
    addresses: list[NodeAddress]


class EndpointConditions(TypedDict, total=False):
    ready: bool | None
    serving: bool | None
    terminating: bool | None


class Endpoint(TypedDict, total=False):
    nodeName: str
    conditions: EndpointConditions


class LeaseSpec(TypedDict, total=False):
    """coordination.k8s.io/v1 LeaseSpec, the fields of a speaker Lease."""

    holderIdentity: str
    renewTime: str  # MicroTime, RFC 3339
    leaseDurationSeconds: int


M = TypeVar("M", bound=Mapping[str, object])


def _dict(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _shape(shape: type[M], value: object) -> M:
    """``value`` read as ``shape`` when it is a mapping, else empty; fields are checked on use."""
    return cast(M, _dict(value))


def _list(value: object) -> Sequence[object]:
    return value if isinstance(value, list) else []


def _str_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def meta_of(obj: Obj) -> ObjectMeta:
    return _shape(ObjectMeta, obj.get("metadata"))


def _spec(obj: Obj) -> ServiceSpec:
    return _shape(ServiceSpec, obj.get("spec"))


def lease_spec(obj: Obj) -> LeaseSpec:
    return _shape(LeaseSpec, obj.get("spec"))


def key_of(obj: Obj) -> ServiceKey:
    meta = meta_of(obj)
    return ServiceKey(f"{meta.get('namespace', '')}/{meta.get('name', '')}")


def deleting(obj: Obj) -> bool:
    return bool(meta_of(obj).get("deletionTimestamp"))


def resource_version(obj: Obj) -> str:
    return str(meta_of(obj).get("resourceVersion", ""))


def finalizers(obj: Obj) -> list[str]:
    value = meta_of(obj).get("finalizers")
    return [str(f) for f in value] if isinstance(value, list) else []


def annotations_of(obj: Obj) -> dict[str, str]:
    return _str_map(meta_of(obj).get("annotations"))


def configmap_data(obj: Obj | None) -> Mapping[str, object] | None:
    """A ConfigMap's ``data`` as it is (``config.parse_configmap`` checks it), None if absent."""
    data = (obj or {}).get("data")
    return data if isinstance(data, Mapping) else None


@dataclass(frozen=True)
class Handling:
    """Whether we handle a Service: ``class_less`` is the setting for Services with no class."""

    lb_class: str = LB_CLASS
    class_less: bool = True

    def handles(self, obj: Obj) -> bool:
        spec = _spec(obj)
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
    annotations: Mapping[str, str], spec: ServiceSpec
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


def _families(spec: ServiceSpec) -> tuple[tuple[int, ...], FamilyPolicy]:
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


def _ports(spec: ServiceSpec) -> frozenset[Port]:
    out = set()
    for p in map(_dict, _list(spec.get("ports"))):
        port = p.get("port")
        if isinstance(port, int):
            out.add(Port(str(p.get("protocol") or "TCP"), port))
    return frozenset(out)


def current_ips(obj: Obj) -> tuple[ipam.IP, ...]:
    """The addresses in status; entries that are not addresses are ignored (and so cleared)."""
    out = []
    for entry in _ingress(obj):
        try:
            ip = ipam.parse_ip(str(entry.get("ip", "")))
        except ValueError:
            continue
        if ip not in out:
            out.append(ip)
    return tuple(out)


def request_of(obj: Obj, namespace: Obj | None = None) -> ServiceRequest:
    """A Service's request in plain values; never raises on malformed input.

    ``namespace``: the Service's Namespace object, whose labels a pool's namespaceSelector
    reads; None when it is not known."""
    meta = meta_of(obj)
    spec = _spec(obj)
    given = annotations_of(obj)
    problems = []
    ips, problem = _requested_ips(given, spec)
    if problem:
        problems.append(problem)
    pool, _ = annotation(given, ANN_POOL)
    sharing, _ = annotation(given, ANN_SHARING)
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
    local = _spec(obj).get("externalTrafficPolicy") == "Local"
    return Announced(key_of(obj), ips, local)


def node_labels(node: Obj) -> tuple[str, dict[str, str]]:
    """The name and labels of a Node (or of any cluster-scoped object: a Namespace)."""
    meta = meta_of(node)
    return str(meta.get("name", "")), _str_map(meta.get("labels"))


def node_info(node: Obj) -> election.NodeInfo:
    """What eligibility needs of a Node: labels, deletion, conditions, taint keys."""
    meta = meta_of(node)
    status, spec = _shape(NodeStatus, node.get("status")), _shape(NodeSpec, node.get("spec"))
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
    name = str(meta_of(node).get("name", ""))
    out: dict[ipam.IP, str] = {}
    for entry in (
        _shape(NodeAddress, e) for e in _list(_dict(node.get("status")).get("addresses"))
    ):
        if entry.get("type") in ("InternalIP", "ExternalIP"):
            try:
                out[ipam.parse_ip(str(entry.get("address", "")))] = name
            except ValueError:
                continue
    return out


def desired_ingress(ips: Sequence[ipam.IP]) -> list[Ingress]:
    return [{"ip": str(ip), "ipMode": "VIP"} for ip in ips]


def _ingress(obj: Obj) -> list[Ingress]:
    status = _shape(ServiceStatus, obj.get("status"))
    balancer = _shape(LoadBalancerStatus, status.get("loadBalancer"))
    return [_shape(Ingress, e) for e in _list(balancer.get("ingress"))]


def ingress_ips(obj: Obj) -> list[str]:
    """The status addresses as written, for comparing desired and actual status."""
    return [str(e.get("ip", "")) for e in _ingress(obj)]


# --- EndpointSlices (discovery.k8s.io/v1): which nodes serve a Service ---


def service_of(slice_obj: Obj) -> ServiceKey | None:
    """The Service (namespace/name) an EndpointSlice belongs to, from its service-name label."""
    meta = meta_of(slice_obj)
    name = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
    return ServiceKey(f"{meta.get('namespace')}/{name}") if name else None


def serves(conditions: Mapping[str, object]) -> bool:
    """Whether kube-proxy may send traffic to an endpoint with these ``conditions``.

    ``ready`` (unset counts as true) or, for a terminating endpoint, ``serving``: kube-proxy
    (1.28+) falls back to serving-but-terminating endpoints when a node has no ready one, so
    such a node still serves ``externalTrafficPolicy: Local`` traffic (EndpointConditions,
    discovery.k8s.io/v1).
    """
    return conditions.get("ready") is not False or conditions.get("serving") is True


def serving_nodes(slice_obj: Obj) -> frozenset[str]:
    """Nodes (``endpoints[].nodeName``) with at least one endpoint that :func:`serves`."""
    nodes = set()
    for ep in (_shape(Endpoint, e) for e in _list(slice_obj.get("endpoints"))):
        node = ep.get("nodeName")
        if isinstance(node, str) and node and serves(_dict(ep.get("conditions"))):
            nodes.add(node)
    return frozenset(nodes)
