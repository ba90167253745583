"""Helpers for the convert tests: the converted pools, read back through our own parser."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from lbctl import config, convert


def document(conv: convert.Conversion) -> dict[str, Any]:
    """The converted config.yaml, after checking it is what the controller accepts."""
    cm = conv.config_map
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert cm["metadata"] == {"name": "lbctl-config", "namespace": "lbctl-system"}
    text = cm["data"]["config.yaml"]
    config.parse_yaml(text)
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def pools_of(conv: convert.Conversion) -> list[dict[str, Any]]:
    pools: list[dict[str, Any]] = document(conv)["pools"]
    return pools


def parsed(conv: convert.Conversion) -> config.PoolConfig:
    return config.parse_yaml(conv.config_map["data"]["config.yaml"])


def assert_notes(conv: convert.Conversion, expected: list[str]) -> None:
    """Every expected fragment is in some note, and there is no note nobody expected."""
    for fragment in expected:
        assert any(fragment in n for n in conv.notes), (fragment, conv.notes)
    assert len(conv.notes) == len(expected), conv.notes


def check_result(conv: convert.Conversion) -> None:
    config.parse_yaml(conv.config_map["data"]["config.yaml"])
    assert yaml.safe_load(convert.render(conv)) == conv.config_map


def metallb_configmap(inner: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: config, namespace: metallb-system}\n"
        "data:\n  config: |\n" + textwrap.indent(inner, "    ")
    )


def kube_vip_configmap(data: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubevip", "namespace": "kube-system"},
            "data": data,
        }
    )
