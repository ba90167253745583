"""Fuzzing the real controller: broken annotations and configs hurt no one else, and say why."""

from __future__ import annotations

import random
from collections.abc import Callable

import config_fuzz
from kube_helpers import (
    ControllerProcess,
    check_findings,
    events,
    ingress,
    lbctl_check,
    put_config,
    service,
    wait_for,
)
from kubernetes import client

from lbctl import config
from lbctl.lab import controlplane

Start = Callable[..., ControllerProcess]

BAD_ADDRESSES = [
    "",
    ",",
    " , ,",
    "not-an-ip",
    "198.51.100.999",
    "198.51.100.5/32",
    "198.51.100.5%eth0",
    "2001:db8::zz",
    "::1",
    "0.0.0.0",
    "224.0.0.5",
    "fe80::1",
    "198.51.100.201,198.51.100.202",  # two of one family
    "2001:db8:1::1,2001:db8:1::2",
    "198.51.100.201,2001:db8:1::1,198.51.100.202",
    "203.0.113.77",  # in no pool
    "\uff11\uff19\uff18.51.100.201",  # fullwidth digits
    "198.51.100.201\n198.51.100.202",
    "1.1.1.1," * 400,  # far longer than any honest list
    "\u202e198.51.100.201",
]
BAD_POOLS = ["nope", "../..", "x" * 300, "LAN", "lan\u0000"]


def fuzz_cases(seed: int, count: int) -> list[dict[str, str]]:
    """Hand-picked bad values, each alone, then random mixes of them with bad pools."""
    rng = random.Random(seed)
    cases = [{"lbctl.io/loadBalancerIPs": v} for v in BAD_ADDRESSES]
    cases += [{"lbctl.io/address-pool": p} for p in BAD_POOLS]
    while len(cases) < count:
        ann = {"lbctl.io/loadBalancerIPs": rng.choice(BAD_ADDRESSES)}
        if rng.random() < 0.5:
            ann["metallb.universe.tf/loadBalancerIPs"] = rng.choice(BAD_ADDRESSES)
        if rng.random() < 0.5:
            ann["lbctl.io/address-pool"] = rng.choice(BAD_POOLS)
        if rng.random() < 0.3:
            ann["lbctl.io/allow-shared-ip"] = "".join(rng.choice("ab\u00e9 /") for _ in range(9))
        cases.append(ann)
    return cases


def test_malformed_annotations_get_a_warning_and_affect_no_other_service(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
) -> None:
    put_config(
        core,
        namespace,
        "pools: [{name: lan, addresses: [198.51.100.200-198.51.100.210, '2001:db8:1::/126']}]",
    )
    ctl = run_controller()
    core.create_namespaced_service(namespace, service("steady"))
    steady = wait_for("steady's address", lambda: ingress(core, namespace, "steady"))

    cases = fuzz_cases(seed=6, count=40)
    for i, ann in enumerate(cases):
        try:
            core.create_namespaced_service(namespace, service(f"v{i}", annotations=ann))
        except client.exceptions.ApiException as exc:
            assert exc.status == 422, exc  # the API server refused it: it never reached us
            cases[i] = {}
    for i, ann in enumerate(cases):
        if not ann:
            continue
        warned = wait_for(
            f"a Warning on v{i} for {ann!r}",
            lambda i=i: [e for e in events(core, namespace, f"v{i}") if e[0] == "Warning"],
        )
        assert warned[0][1] in ("InvalidRequest", "AllocationFailed"), warned
        assert ingress(core, namespace, f"v{i}") == []

    assert ctl.proc.alive()
    assert ingress(core, namespace, "steady") == steady
    # The audit: each victim pending with a reason, nothing held twice or outside a pool.
    _, findings = lbctl_check(apiserver.kubeconfig, namespace, "NoLiveSpeaker")
    assert {f["kind"] for f in findings} == {"Pending"}, findings
    assert {f["subject"] for f in findings} == {
        f"{namespace}/v{i}" for i, ann in enumerate(cases) if ann
    }


def test_a_stream_of_broken_configs_moves_no_address_and_each_is_reported(
    core: client.CoreV1Api,
    namespace: str,
    run_controller: Start,
    apiserver: controlplane.ControlPlane,
    full_counts: bool,
) -> None:
    put_config(core, namespace, "pools: [{name: a, addresses: [198.51.100.10-198.51.100.20]}]")
    ctl = run_controller()
    core.create_namespaced_service(namespace, service("web"))
    held = wait_for("web", lambda: ingress(core, namespace, "web"))
    rng, broken = random.Random(11), []
    while len(broken) < (1000 if full_counts else 150):
        text = config_fuzz.mutated_text(rng)
        try:
            config.parse_yaml(text)
        except config.ConfigError:
            broken.append(text)
    # Last, one whose field we know, to find its Event.
    broken.append("pools: [{name: a, addresses: [198.51.100.10-198.51.100.20], colour: red}]")
    for text in broken:
        put_config(core, namespace, text)
    wait_for(
        "InvalidConfig naming the field",
        lambda: [
            e
            for e in events(core, namespace, "lbctl-config", kind="ConfigMap")
            if e[0] == "Warning" and e[1] == "InvalidConfig" and "pools[0].colour" in e[2]
        ],
    )
    assert ctl.proc.alive() and ctl.metric("lbctl_config_stale") == 1
    assert ingress(core, namespace, "web") == held  # the last good config is still in force
    core.create_namespaced_service(namespace, service("next"))
    assert wait_for("next", lambda: ingress(core, namespace, "next")) != held  # and allocates
    # The audit says the config is broken, and nothing else.
    findings = check_findings(apiserver.kubeconfig, namespace, "NoLiveSpeaker")
    assert findings == [("ConfigError", "config")]
