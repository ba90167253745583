"""The docs name every setting, reason, event and metric the code has (docs stay true)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from lbctl import allocator, audit, config, controller, packets, speaker

DOCS = Path(__file__).parents[2] / "docs"
REFERENCE = (DOCS / "configuration.md").read_text()
METRICS_SOURCE = (Path(controller.__file__).parent / "metrics.py").read_text()
SPEAKER_SOURCE = Path(speaker.__file__).read_text()


@pytest.mark.parametrize("field", sorted(controller.ControllerSettings.model_fields))
def test_every_controller_setting_is_documented(field: str) -> None:
    assert f"--{field.replace('_', '-')}" in REFERENCE


@pytest.mark.parametrize("reason", [r.value for r in allocator.Reason])
def test_every_pending_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in REFERENCE
    assert f"`{reason}`" in (DOCS / "operations.md").read_text()


@pytest.mark.parametrize("metric", re.findall(r'"(lbctl_[a-z_]+)"', METRICS_SOURCE))
def test_every_metric_is_documented(metric: str) -> None:
    assert metric in REFERENCE


@pytest.mark.parametrize("field", sorted(speaker.SpeakerSettings.model_fields))
def test_every_speaker_setting_is_documented(field: str) -> None:
    assert f"--{field.replace('_', '-')}" in REFERENCE


@pytest.mark.parametrize("metric", re.findall(r'"(lbctl_speaker_[a-z_]+)"', SPEAKER_SOURCE))
def test_every_speaker_metric_is_documented(metric: str) -> None:
    assert metric in REFERENCE


@pytest.mark.parametrize("reason", [d.name.lower() for d in packets.Drop])
def test_every_drop_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in REFERENCE


@pytest.mark.parametrize("kind", [k.value for k in audit.Kind])
def test_every_check_finding_is_documented(kind: str) -> None:
    assert f"`{kind}`" in (DOCS / "operations.md").read_text()


def _config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of the pool ConfigMap, as the reference spells its path (``pools[].name``)."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        inner = field.annotation
        if typing.get_origin(inner) is list:
            (inner,) = typing.get_args(inner)
            path += "[]"
        nested = isinstance(inner, type) and issubclass(inner, BaseModel)
        if nested and inner is not config.RawSelector:  # selectors are Kubernetes' own
            out += _config_keys(inner, f"{path}.")
    return out


@pytest.mark.parametrize("key", _config_keys(config.RawConfig))
def test_every_config_key_is_documented(key: str) -> None:
    assert f"`{key}" in REFERENCE
