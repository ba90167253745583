"""The docs name every setting, reason, event and metric the code has (docs stay true)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import allocator, audit, config, controller, election, metrics, packets, speaker

DOCS = Path(__file__).parents[2] / "docs"
REFERENCE = (DOCS / "configuration.md").read_text()
# Every family each component registers, as Prometheus will see its name.
METRICS = sorted(
    family.name
    for registry in (metrics.ControllerMetrics().registry, speaker.SpeakerMetrics().registry)
    for family in registry.collect()
)


@pytest.mark.parametrize("field", sorted(controller.ControllerSettings.model_fields))
def test_every_controller_setting_is_documented(field: str) -> None:
    assert f"--{field.replace('_', '-')}" in REFERENCE


@pytest.mark.parametrize("reason", [r.value for r in allocator.Reason])
def test_every_pending_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in REFERENCE
    assert f"`{reason}`" in (DOCS / "operations.md").read_text()


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_is_documented(metric: str) -> None:
    assert metric in REFERENCE


@pytest.mark.parametrize("field", sorted(speaker.SpeakerSettings.model_fields))
def test_every_speaker_setting_is_documented(field: str) -> None:
    assert f"--{field.replace('_', '-')}" in REFERENCE


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


def _config_keys() -> list[str]:
    """Every key of the pool ConfigMap, as the reference table spells its path."""
    keys = [f"pools[].{f}" for f in config.RawPool.model_fields]
    keys += [f"pools[].announce[].{f}" for f in config.RawAnnounceRule.model_fields]
    keys += [f"reservations[].{f}" for f in config.RawReservation.model_fields]
    for name, model in (("garp", config.RawGarp), ("conflicts", config.RawConflicts)):
        keys += [f"announce.{name}.{f}" for f in model.model_fields]
    keys += [f"announce.{f}" for f in ("interfaces", "nodeSelector")]
    return keys


@pytest.mark.parametrize("key", _config_keys())
def test_every_config_key_is_documented(key: str) -> None:
    assert f"| `{key}" in REFERENCE


@pytest.mark.parametrize("why", [w.value for w in election.Ineligible])
def test_every_reason_a_node_may_not_announce_is_documented(why: str) -> None:
    assert why in (DOCS / "operations.md").read_text()


@pytest.mark.parametrize(
    "why", [w.value for w in config.Silence if w is not config.Silence.NOT_IN_POOL]
)
def test_every_reason_a_pool_leaves_a_node_out_is_documented(why: str) -> None:
    assert why in (DOCS / "operations.md").read_text()
