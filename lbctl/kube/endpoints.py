"""EndpointSlices (``discovery.k8s.io/v1``): which nodes serve a Service (raw dicts → values).

Pure: reads the raw objects the informer caches; the list/watch call is the typed client's
``DiscoveryV1Api.list_endpoint_slice_for_all_namespaces``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def service_of(slice_obj: Mapping[str, Any]) -> str | None:
    meta = _dict(slice_obj.get("metadata"))
    name = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace')}/{name}" if name else None


def serves(conditions: Mapping[str, Any]) -> bool:
    """Whether kube-proxy may send traffic to an endpoint with these ``conditions``.

    ``ready`` (unset counts as true) or, for a terminating endpoint, ``serving``: kube-proxy
    (1.28+) falls back to serving-but-terminating endpoints when a node has no ready one, so
    such a node still serves ``externalTrafficPolicy: Local`` traffic (EndpointConditions,
    discovery.k8s.io/v1).
    """
    return conditions.get("ready") is not False or conditions.get("serving") is True


def serving_nodes(slice_obj: Mapping[str, Any]) -> frozenset[str]:
    """Nodes (``endpoints[].nodeName``) with at least one endpoint that :func:`serves`."""
    nodes = set()
    endpoints = slice_obj.get("endpoints")
    for ep in endpoints if isinstance(endpoints, list) else []:
        ep = _dict(ep)
        node = ep.get("nodeName")
        if isinstance(node, str) and node and serves(_dict(ep.get("conditions"))):
            nodes.add(node)
    return frozenset(nodes)
