"""What the informer's cache keeps of each object: everything an adapter reads, once."""

from __future__ import annotations

import json

from lbctl.kube import informer

SERVICE = {
    "metadata": {
        "name": "web",
        "namespace": "demo",
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        "annotations": {"lbctl.io/allocated-from-pool": "default"},
    },
    "spec": {"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 80}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10", "ipMode": "VIP"}]}},
}


def _parsed() -> dict[str, object]:
    # As from a watch: each event is its own JSON document, with its own strings.
    parsed: dict[str, object] = json.loads(json.dumps(SERVICE))
    return parsed


def test_managed_fields_go_and_everything_else_stays() -> None:
    kept = informer.slim(_parsed())
    want = json.loads(json.dumps(SERVICE))
    del want["metadata"]["managedFields"]
    assert kept == want


def test_two_objects_share_their_field_names_and_short_values() -> None:
    a, b = informer.slim(_parsed()), informer.slim(_parsed())
    key_a = next(k for k in a["spec"] if k == "type")
    key_b = next(k for k in b["spec"] if k == "type")
    assert key_a is key_b
    assert a["spec"]["type"] is b["spec"]["type"]
    assert a["spec"]["ports"][0]["protocol"] is b["spec"]["ports"][0]["protocol"]


def test_a_flood_of_unique_names_cannot_grow_the_shared_table_past_its_bound() -> None:
    for i in range(informer.SHARED_STRINGS_MAX + 100):
        informer.slim({"metadata": {"name": f"n{i}"}})
    assert len(informer._shared) <= informer.SHARED_STRINGS_MAX
    # Objects stay whole past the bound: only sharing stops.
    assert informer.slim({"metadata": {"name": "late-arrival"}}) == {
        "metadata": {"name": "late-arrival"}
    }
