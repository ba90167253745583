"""MetalLB in the lab, its pure parts: the native manifest with webhooks off, the pool, and
the audit log that counts each peer's API writes."""

from __future__ import annotations

import json

import pytest
import yaml

from lbctl.lab import controlplane, metallb

# The shapes of metallb-native.yaml v0.16.2, cut down to what the lab changes or checks.
NATIVE = """\
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: metallb-system}
spec:
  template:
    spec:
      containers:
      - name: controller
        image: quay.io/metallb/controller:v0.16.2
        args: [--port=9120, --log-level=info]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: speaker, namespace: metallb-system}
spec:
  template:
    spec:
      hostNetwork: true
      containers:
      - name: speaker
        image: quay.io/metallb/speaker:v0.16.2
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: metallb-webhook-configuration}
webhooks: []
"""


def test_the_native_manifest_runs_with_webhooks_off_and_is_otherwise_unchanged() -> None:
    objs = metallb.native_objects(NATIVE, "v0.16.2")
    kinds = [o["kind"] for o in objs]
    assert kinds == ["Namespace", "Deployment", "DaemonSet"]  # no ValidatingWebhookConfiguration
    [controller] = objs[1]["spec"]["template"]["spec"]["containers"]
    assert controller["args"] == ["--port=9120", "--log-level=info", "--webhook-mode=disabled"]
    assert objs[2] == list(yaml.safe_load_all(NATIVE))[2]  # the speaker as MetalLB ships it


def test_a_manifest_for_another_version_is_refused_naming_the_image() -> None:
    with pytest.raises(metallb.MetalLBError, match=r"controller:v0\.16\.2"):
        metallb.native_objects(NATIVE, "v0.15.2")


def test_a_manifest_without_the_speaker_is_refused() -> None:
    without = "---".join(d for d in NATIVE.split("---") if "DaemonSet" not in d)
    with pytest.raises(metallb.MetalLBError, match="no DaemonSet speaker"):
        metallb.native_objects(without, "v0.16.2")


def test_the_pool_is_one_ipaddresspool_announced_by_one_l2advertisement() -> None:
    pool, l2 = metallb.config_objects(
        ["198.51.100.200-198.51.100.250", "2001:db8::200-2001:db8::2ff"]
    )
    assert pool["kind"] == "IPAddressPool" and l2["kind"] == "L2Advertisement"
    assert pool["apiVersion"] == l2["apiVersion"] == "metallb.io/v1beta1"
    assert pool["metadata"] == {"name": "lab", "namespace": "metallb-system"}
    assert pool["spec"]["addresses"][0] == "198.51.100.200-198.51.100.250"
    assert l2["spec"] == {"ipAddressPools": ["lab"]}  # every node, every interface


def event(user: str, verb: str, stage: str = "ResponseComplete", **ref: str) -> str:
    return json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": stage, "verb": verb,
        "user": {"username": user}, "objectRef": ref,
        "stageTimestamp": "2026-12-01T01:02:03.500000Z",
    })  # fmt: skip


def test_the_audit_log_gives_each_completed_write_with_who_what_and_when() -> None:
    sa = "system:serviceaccount:metallb-system:controller"
    lines = [
        event(sa, "update", resource="services", subresource="status"),
        event(sa, "create", resource="events"),
        event(sa, "get", resource="services"),  # a read: the policy logs none, skipped anyway
        event(sa, "patch", stage="ResponseStarted", resource="services"),
        '{"cut short',
        "",
    ]
    writes = controlplane.audit_writes(lines)
    assert [(w.user, w.verb, w.resource) for w in writes] == [
        (sa, "update", "services/status"),
        (sa, "create", "events"),
    ]
    assert writes[0].at == pytest.approx(1796086923.5)


def test_the_audit_policy_logs_writes_only_and_never_a_body() -> None:
    rules = controlplane.AUDIT_POLICY["rules"]
    assert rules == [{"level": "Metadata", "verbs": list(controlplane.WRITE_VERBS)},
                     {"level": "None"}]  # fmt: skip
