"""One reading of the cluster for ``lbctl status`` and ``lbctl check`` (I/O: API reads only).

Typed client calls (``CoreV1Api``, ``CoordinationV1Api``, ``DiscoveryV1Api``), each with a
timeout: an API server that accepts but never answers must not hang the command. The objects
become raw JSON (``ApiClient.sanitize_for_serialization``) for ``objects`` to read.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import diagnose, leases, objects

TIMEOUT = 30  # seconds, per request


def read(
    api: client.ApiClient, *, namespace: str, config_map: str, handling: objects.Handling
) -> diagnose.ClusterView:
    """Services and EndpointSlices (all namespaces), Nodes, Namespaces (None when we may not
    list them), the pool ConfigMap and the speaker Leases in ``namespace``. Raises
    ``ApiException`` (except a missing ConfigMap, which is ``config_data=None``) and urllib3's
    ``HTTPError`` when the server cannot be reached."""
    core = client.CoreV1Api(api)
    svcs = api.sanitize_for_serialization(
        core.list_service_for_all_namespaces(_request_timeout=TIMEOUT).items
    )
    nodes = api.sanitize_for_serialization(core.list_node(_request_timeout=TIMEOUT).items)
    try:
        data = core.read_namespaced_config_map(config_map, namespace, _request_timeout=TIMEOUT).data
    except ApiException as exc:
        if exc.status != 404:
            raise
        data = None
    found, _, headers = client.CoordinationV1Api(api).list_namespaced_lease_with_http_info(
        namespace, _request_timeout=TIMEOUT
    )
    slices = api.sanitize_for_serialization(
        client.DiscoveryV1Api(api)
        .list_endpoint_slice_for_all_namespaces(_request_timeout=TIMEOUT)
        .items
    )
    try:
        namespaces = api.sanitize_for_serialization(
            core.list_namespace(_request_timeout=TIMEOUT).items
        )
    except ApiException as exc:  # may not list them: judged without their labels
        if exc.status != 403:
            raise
        namespaces = None
    lease_objs = api.sanitize_for_serialization(found.items)
    # Judged by the API server's clock, not ours: a laptop's skew must not kill speakers.
    now = server_now(headers)
    return diagnose.ClusterView(
        services=svcs,
        nodes=nodes,
        config_data=data,
        leases=leases.lease_states(lease_objs, now),
        slices=slices,
        handling=handling,
        conflicts=leases.conflicts(lease_objs, now),  # an expired Lease's word counts no more
        namespaces=namespaces,
    )


def server_now(headers: Mapping[str, str] | None) -> datetime.datetime:
    """The API server's clock from its ``Date`` header (RFC 9110 §6.6.1); ours without one."""
    try:
        return email.utils.parsedate_to_datetime((headers or {})["Date"])
    except (KeyError, TypeError, ValueError):
        return leases.wall_now()
