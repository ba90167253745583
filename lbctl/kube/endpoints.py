"""EndpointSlices: which nodes hold a ready endpoint of a Service (adapter: raw dicts → values).

``discovery.k8s.io/v1`` where the server has it, else ``v1beta1`` (Kubernetes 1.20), whose
node is in ``topology["kubernetes.io/hostname"]``. The Python client has no typed API for
v1beta1, so both are read through one raw list-and-watch function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HOSTNAME = "kubernetes.io/hostname"


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def service_of(slice_obj: Mapping[str, Any]) -> str | None:
    meta = _dict(slice_obj.get("metadata"))
    name = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace')}/{name}" if name else None


def ready_nodes(slice_obj: Mapping[str, Any]) -> frozenset[str]:
    """Nodes with at least one ready endpoint in this slice (ready unset counts as ready)."""
    nodes = set()
    endpoints = slice_obj.get("endpoints")
    for ep in endpoints if isinstance(endpoints, list) else []:
        ep = _dict(ep)
        if _dict(ep.get("conditions")).get("ready") is False:
            continue
        node = ep.get("nodeName") or _dict(ep.get("topology")).get(HOSTNAME)
        if isinstance(node, str) and node:
            nodes.add(node)
    return frozenset(nodes)


def api_version(api: client.ApiClient) -> str:
    """``discovery.k8s.io/v1`` if served, else ``discovery.k8s.io/v1beta1``."""
    for group in client.ApisApi(api).get_api_versions().groups or []:
        if group.name == "discovery.k8s.io":
            versions = {v.version for v in group.versions}
            return "discovery.k8s.io/v1" if "v1" in versions else "discovery.k8s.io/v1beta1"
    return "discovery.k8s.io/v1"


def lister(api: client.ApiClient, version: str) -> Any:
    """A list/watch function for all EndpointSlices, in the shape the informer calls."""
    path = f"/apis/{version}/endpointslices"

    def call(
        *,
        watch: bool = False,
        resource_version: str | None = None,
        allow_watch_bookmarks: bool | None = None,
        timeout_seconds: int | None = None,
        _preload_content: bool = False,
        _request_timeout: Any = None,
    ) -> Any:
        query: list[tuple[str, Any]] = [("watch", "true")] if watch else []
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if allow_watch_bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        if timeout_seconds:
            query.append(("timeoutSeconds", timeout_seconds))
        params = api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        # The same call the generated APIs make; raw, like the informer wants it.
        return api._call_with_legacy_options(
            params, {"200": None}, None, False, _request_timeout, True
        )

    return call
