"""The docs name every setting, reason, event and metric the code has (docs stay true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lbctl import allocator, audit, controller, packets, speaker

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


def test_the_architecture_picture_names_every_module() -> None:
    """docs/architecture.md's layers stay true: every module of lbctl/ is placed in them."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "architecture.md").read_text()
    modules = [
        p.name
        for p in (root / "lbctl").iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").exists())
    ]
    assert [m for m in modules if (m if m.endswith(".py") else m + "/") not in text] == []
