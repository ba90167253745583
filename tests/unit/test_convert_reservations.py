"""Reservations from lbctl convert: what MetalLB and kube-vip users do today to pin an address."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from lbctl import cli, config, convert
from lbctl.convert.reservations import reservations


def lb(name: str, ns: str = "shop", ip: str | None = None, **annotations: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80}]}
    if ip:
        spec["loadBalancerIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": spec,
    }


def pool(name: str, *addresses: str, auto: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "addresses": list(addresses), "autoAssign": auto, **extra}


METALLB_POOLS = [
    pool("lan", "192.168.1.200-192.168.1.250"),
    pool("web-ip", "192.168.1.10", auto=False),
    pool("dns-ip", "192.168.1.11/32", auto=False),
    pool("two", "192.168.1.20-192.168.1.21", auto=False),
]
KUBE_VIP_POOLS = [
    pool("global", "192.168.1.200-192.168.1.250", "fd00::/120", avoidBuggyIPs=True, priority=10),
    pool("team-a", "192.168.2.0/24", avoidBuggyIPs=True, namespaces=["team-a"]),
]
IPS = "metallb.universe.tf/loadBalancerIPs"
POOL = "metallb.universe.tf/address-pool"
KV = "kube-vip.io/loadbalancerIPs"

# Each row: source, pools, the input's Services, the reservations written, and words in notes.
ROWS = [
    (
        "MetalLB: the only address of a manual pool, asked for by annotation, is reserved",
        "metallb",
        METALLB_POOLS,
        [lb("web", **{IPS: "192.168.1.10"})],
        [("192.168.1.10", "shop/web")],
        ["shop/web: reservation for 192.168.1.10 (the only address of pool 'web-ip'"],
    ),
    (
        "MetalLB: metallb.io/ and spec.loadBalancerIP ask as well",
        "metallb",
        METALLB_POOLS,
        [lb("web", **{"metallb.io/loadBalancerIPs": "192.168.1.10"}), lb("dns", ip="192.168.1.11")],
        [("192.168.1.10", "shop/web"), ("192.168.1.11", "shop/dns")],
        [],
    ),
    (
        "MetalLB: an address-pool annotation naming a single-address pool asks for its address",
        "metallb",
        METALLB_POOLS,
        [lb("web", **{POOL: "web-ip"})],
        [("192.168.1.10", "shop/web")],
        [],
    ),
    (
        "MetalLB: an address-pool annotation names the source's pool, which convert renamed",
        "metallb",
        [pool("lan", "192.168.1.0/25"), pool("web-ip", "192.168.1.200", auto=False)],
        [lb("web", **{"metallb.io/address-pool": "Web_IP"})],
        [("192.168.1.200", "shop/web")],
        [],
    ),
    (
        "MetalLB: an address asked for in an auto-assign pool is left as a request",
        "metallb",
        METALLB_POOLS,
        [lb("web", **{IPS: "192.168.1.210"})],
        [],
        [],
    ),
    (
        "MetalLB: an address of a manual pool of two is left as a request",
        "metallb",
        METALLB_POOLS,
        [lb("web", **{IPS: "192.168.1.20"})],
        [],
        [],
    ),
    (
        "MetalLB: two Services sharing the address get no reservation, and a note says why",
        "metallb",
        METALLB_POOLS,
        [lb("dns-tcp", **{IPS: "192.168.1.11"}), lb("dns-udp", **{IPS: "192.168.1.11"})],
        [],
        [
            "shop/dns-tcp, shop/dns-udp: 192.168.1.11 not reserved: a reservation keeps an "
            "address for one Service, and these share it"
        ],
    ),
    (
        "MetalLB: a single-address manual pool nobody asks for gets a note saying how",
        "metallb",
        METALLB_POOLS,
        [lb("web", **{IPS: "192.168.1.10"})],
        [("192.168.1.10", "shop/web")],
        [
            "pool 'dns-ip' holds only 192.168.1.11 with autoAssign false, but no Service in the "
            "input asks for it: to keep it for one, add reservations: [{address: 192.168.1.11, "
            "service: NAMESPACE/NAME}]"
        ],
    ),
    (
        "MetalLB: with no LoadBalancer Services in the input, one note says to add them",
        "metallb",
        METALLB_POOLS,
        [
            {"kind": "ConfigMap", "metadata": {"name": "config"}},
            {"kind": "Service", "metadata": {"name": "db", "namespace": "shop"}, "spec": {}},
        ],
        [],
        ["add the Services to the input (kubectl get svc -A -o yaml)"],
    ),
    (
        "kube-vip: its annotation, which lbctl does not read, becomes a reservation",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("web", **{KV: "192.168.1.210"})],
        [("192.168.1.210", "shop/web")],
        ["shop/web: reservation for 192.168.1.210 (it pins it with kube-vip.io/"],
    ),
    (
        "kube-vip: the annotation and spec.loadBalancerIP together may be the provider's: a note",
        "kube-vip",
        KUBE_VIP_POOLS,
        [
            lb("web", ip="192.168.1.210", **{KV: "192.168.1.210"}),
            lb("api", ip="192.168.1.211", **{KV: "192.168.1.211,fd00::7"}),
            lb("db", **{KV: "192.168.1.212"}),
        ],
        [("192.168.1.212", "shop/db")],
        [
            "2 Service(s) not reserved: shop/web (192.168.1.210), shop/api (192.168.1.211, "
            "fd00::7): each carries both kube-vip.io/loadbalancerIPs and spec.loadBalancerIP, "
            "as kube-vip-cloud-provider writes them on every Service it gives an address"
        ],
    ),
    (
        "kube-vip: spec.loadBalancerIP and a dual-stack pair, one reservation per family",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("web", ip="192.168.1.210"), lb("api", ns="team-a", **{KV: "192.168.2.5,fd00::5"})],
        [("192.168.1.210", "shop/web"), ("192.168.2.5", "team-a/api"), ("fd00::5", "team-a/api")],
        [],
    ),
    (
        "kube-vip: an address outside every pool is not reserved",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("web", **{KV: "10.9.9.9"})],
        [],
        ["shop/web: 10.9.9.9 not reserved: it is in no pool"],
    ),
    (
        "kube-vip: a namespace's pool does not admit another namespace's Service",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("web", **{KV: "192.168.2.5"})],
        [],
        ["shop/web: 192.168.2.5 not reserved: pool 'team-a' admits only namespaces team-a"],
    ),
    (
        "kube-vip: a .0 of a pool that avoids them is not reserved",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("api", ns="team-a", **{KV: "192.168.2.0"})],
        [],
        ["team-a/api: 192.168.2.0 not reserved: it ends in .0 or .255"],
    ),
    (
        "kube-vip: an annotation that is not an address is said so",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("web", **{KV: "nope"})],
        [],
        ["shop/web: 'nope' is not an IP address: not reserved"],
    ),
    (
        "kube-vip: two addresses of one family cannot both be reserved",
        "kube-vip",
        KUBE_VIP_POOLS,
        [lb("web", **{KV: "192.168.1.210,192.168.1.211"})],
        [],
        ["shop/web: asks for two addresses of one family: not reserved"],
    ),
]


@pytest.mark.parametrize(
    ("title", "source", "pools", "objs", "expected", "notes"), ROWS, ids=[r[0] for r in ROWS]
)
def test_reservations_from_what_users_do_today(
    title: str,
    source: str,
    pools: list[dict[str, Any]],
    objs: list[dict[str, Any]],
    expected: list[tuple[str, str]],
    notes: list[str],
) -> None:
    renamed = {"Web_IP": "web-ip"}
    entries, said = reservations(source, pools, objs, renamed)
    assert [(e["address"], e["service"]) for e in entries] == expected
    for fragment in notes:
        assert any(fragment in n for n in said), (fragment, said)
    # One note per reservation at least: convert never changes anything silently.
    assert len(said) >= len(entries)
    # What convert would write beside the pools is a config the controller takes.
    cfg = config.parse({"pools": pools, "reservations": entries})
    assert [(str(r.address), r.service) for r in cfg.reservations] == expected


# --- through lbctl convert: the Services appended to the configuration ------------------


def converted(source: str, text: str) -> dict[str, Any]:
    conv = convert.convert(source, text)
    document: dict[str, Any] = yaml.safe_load(conv.config_map["data"]["config.yaml"])
    return document


def converted_pools(source: str, text: str) -> list[dict[str, Any]]:
    pools: list[dict[str, Any]] = converted(source, text)["pools"]
    return pools


KUBE_VIP_CM = """apiVersion: v1
kind: ConfigMap
metadata: {name: kubevip, namespace: kube-system}
data: {cidr-global: 192.168.1.200/29, cidr-team-a: 192.168.2.0/28}
"""
METALLB_CM = """apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools:
    - {name: lan, protocol: layer2, addresses: [192.168.1.0/25]}
    - {name: Web_IP, protocol: layer2, addresses: [192.168.1.200/32], auto-assign: false}
"""


def test_kube_vip_namespace_isolation_as_convert_writes_it_is_respected() -> None:
    pools = converted_pools("kube-vip", KUBE_VIP_CM)
    objs = [
        lb("web", **{KV: "192.168.1.201"}),
        lb("api", ns="team-a", **{KV: "192.168.1.202"}),  # kube-vip never checked it
        lb("db", ns="team-a", **{KV: "192.168.2.3"}),
    ]
    entries, notes = reservations("kube-vip", pools, objs)
    assert entries == [
        {"address": "192.168.1.201", "service": "shop/web"},
        {"address": "192.168.2.3", "service": "team-a/db"},
    ]
    assert (
        "team-a/api: 192.168.1.202 not reserved: pool 'global' admits only namespaces matching "
        "kubernetes.io/metadata.name notin (team-a)" in notes
    )
    config.parse({"pools": pools, "reservations": entries})


def test_metallb_renamed_pool_as_convert_writes_it() -> None:
    pools = converted_pools("metallb", METALLB_CM)
    entries, _ = reservations(
        "metallb", pools, [lb("web", **{POOL: "Web_IP"})], renamed={"Web_IP": "web-ip"}
    )
    assert entries == [{"address": "192.168.1.200", "service": "shop/web"}]


def services_list(*objs: dict[str, Any]) -> str:
    """``kubectl get svc -A -o yaml``, appended to the configuration."""
    return "---\n" + yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(objs)})


# Each row: source, input text, the reservations convert writes, and words in its notes.
CONVERT_ROWS = [
    (
        "MetalLB: a renamed single-address pool asked for by one Service becomes its reservation",
        "metallb",
        METALLB_CM + services_list(lb("web", **{POOL: "Web_IP"}), lb("other")),
        [{"address": "192.168.1.200", "service": "shop/web"}],
        ["shop/web: reservation for 192.168.1.200 (the only address of pool 'web-ip'"],
    ),
    (
        "MetalLB: with the config alone, a note says how to add the reservation",
        "metallb",
        METALLB_CM,
        None,
        ["add the Services to the input (kubectl get svc -A -o yaml)"],
    ),
    (
        "kube-vip: a pinned Service is reserved, a provider-assigned one is only noted",
        "kube-vip",
        KUBE_VIP_CM
        + services_list(
            lb("web", **{KV: "192.168.1.201"}),
            lb("auto", ip="192.168.1.202", **{KV: "192.168.1.202"}),
        ),
        [{"address": "192.168.1.201", "service": "shop/web"}],
        ["1 Service(s) not reserved: shop/auto (192.168.1.202)"],
    ),
    (
        "Services are not reported as ignored objects",
        "kube-vip",
        KUBE_VIP_CM + services_list(lb("plain")),
        None,
        [],
    ),
]


@pytest.mark.parametrize(
    ("title", "source", "text", "expected", "notes"), CONVERT_ROWS, ids=[r[0] for r in CONVERT_ROWS]
)
def test_convert_writes_reservations_where_certain_and_says_so(
    title: str,
    source: str,
    text: str,
    expected: list[dict[str, str]] | None,
    notes: list[str],
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conv = convert.convert(source, text)
    document = yaml.safe_load(conv.config_map["data"]["config.yaml"])
    assert document.get("reservations") == expected
    for fragment in notes:
        assert any(fragment in n for n in conv.notes), (fragment, conv.notes)
    assert not any("ignored" in n and "Service" in n for n in conv.notes)
    # The output, notes as comments, passes our own parser (lbctl validate).
    path = tmp_path / "out.yaml"
    path.write_text(convert.render(conv))
    assert cli.main(["validate", str(path)]) == 0
    shown = capsys.readouterr().out
    assert all(e["address"] in shown and e["service"] in shown for e in expected or [])
