"""Helpers for the status tests: a report from raw objects and a ConfigMap's data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lbctl import objects, status


def build(
    service_objs: Iterable[objects.Obj],
    configmap_data: Mapping[str, str] | None,
    *args: Any,
    **kwargs: Any,
) -> status.Report:
    """``status.report`` with the ConfigMap's data parsed first, as ``lbctl status`` does."""
    return status.report(service_objs, status.parse_config(configmap_data), *args, **kwargs)
