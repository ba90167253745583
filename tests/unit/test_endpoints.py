"""Which nodes serve a Service, read from discovery.k8s.io/v1 EndpointSlices."""

from __future__ import annotations

import pytest

from lbctl import objects


@pytest.mark.parametrize(
    ("says", "conditions", "serves"),
    [
        ("a ready endpoint serves", {"ready": True}, True),
        ("an endpoint with no conditions counts as ready", {}, True),
        ("a not-ready endpoint does not serve", {"ready": False}, False),
        (
            "a terminating endpoint that still serves keeps its node, as kube-proxy does",
            {"ready": False, "serving": True, "terminating": True},
            True,
        ),
        (
            "a terminating endpoint that no longer serves does not",
            {"ready": False, "serving": False, "terminating": True},
            False,
        ),
        ("not ready and serving unknown does not serve", {"ready": False, "serving": None}, False),
    ],
)
def test_endpoint_conditions(says: str, conditions: dict[str, object], serves: bool) -> None:
    assert objects.serves(conditions) is serves, says


def test_serving_nodes_reads_node_names_and_skips_junk() -> None:
    slice_obj = {
        "endpoints": [
            {"nodeName": "node1", "conditions": {"ready": True}},
            {"nodeName": "node2", "conditions": {"ready": False}},
            {"nodeName": "node3", "conditions": {"ready": False, "serving": True}},
            {"conditions": {"ready": True}},  # no node: kube-proxy cannot place it either
            "junk",
            {"nodeName": 7},
        ]
    }
    assert objects.serving_nodes(slice_obj) == {"node1", "node3"}
    assert objects.serving_nodes({"endpoints": "x"}) == frozenset()
