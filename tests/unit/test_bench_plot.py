"""bench/plot.py draws the docs' figures from the checked-in results and from partial ones."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("matplotlib")

BENCH = Path(__file__).parents[2] / "bench"
RESULTS = BENCH / "results"


def load_plot() -> ModuleType:
    """bench/ is not a package: load plot.py by its path."""
    spec = importlib.util.spec_from_file_location("lbctl_bench_plot", BENCH / "plot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


plot = load_plot()


def run(
    tmp_path: Path, controller: Path, speaker: Path, lab: Path, peers: Path | None = None
) -> Path:
    out = tmp_path / "img"
    code = plot.main(
        [
            f"--controller={controller}",
            f"--speaker={speaker}",
            f"--lab={lab}",
            f"--peers={peers or tmp_path / 'no-peers.json'}",
            f"--out-dir={out}",
        ]
    )
    assert code == 0
    return out


def written(out: Path) -> set[str]:
    for svg in out.glob("*.svg"):
        assert "<svg" in svg.read_text()
    return {svg.name for svg in out.glob("*.svg")}


def test_the_checked_in_results_give_every_figure(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        RESULTS / "controller.json",
        RESULTS / "speaker.json",
        tmp_path / "no-lab.json",
    )
    assert {"controller.svg", "speaker-arp.svg", "speaker-failover.svg"} <= written(out)


def test_the_output_is_the_same_on_a_second_run(tmp_path: Path) -> None:
    args = (RESULTS / "controller.json", RESULTS / "speaker.json", tmp_path / "no-lab.json")
    first = {p.name: p.read_bytes() for p in run(tmp_path / "a", *args).glob("*.svg")}
    second = {p.name: p.read_bytes() for p in run(tmp_path / "b", *args).glob("*.svg")}
    assert first == second


def test_missing_sections_are_left_out_quietly(tmp_path: Path) -> None:
    controller = tmp_path / "controller.json"
    controller.write_text(json.dumps({"bulk_seconds": 4.0, "bulk_floor_seconds": 3.5}))
    speaker = tmp_path / "speaker.json"
    speaker.write_text(
        json.dumps(
            {
                "handover_sigterm": {
                    "trials": 3,
                    "lease_duration_s": 4,
                    "renew_period_s": 1.0,
                    "p50_s": 0.2,
                    "p99_s": 0.4,
                }
            }
        )
    )
    out = run(tmp_path, controller, speaker, tmp_path / "no-lab.json")
    assert written(out) == {"controller.svg", "speaker-failover.svg"}


def test_raw_samples_and_a_client_outage_are_drawn(tmp_path: Path) -> None:
    controller = tmp_path / "controller.json"
    controller.write_text(
        json.dumps(
            {
                "latency_ms": {"p50": 2.0, "p99": 4.0, "samples": [1.0, 2.0, 4.0]},
                "latency_floor_ms": {"p50": 1.5, "p99": 3.0, "samples": [1.0, 1.5, 3.0]},
            }
        )
    )
    speaker = tmp_path / "speaker.json"
    speaker.write_text(
        json.dumps(
            {
                "arp_latency": {
                    "p50_ms": 0.05,
                    "p99_ms": 0.2,
                    "kernel_p50_ms": 0.05,
                    "kernel_p99_ms": 0.15,
                    "latency_samples_ms": [0.04, 0.05, 0.2],
                    "kernel_latency_samples_ms": [0.04, 0.05, 0.15],
                }
            }
        )
    )
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps({"trials": 3, "outages_s": [0.9, 1.1, 1.0], "max_s": 1.1}))
    out = run(tmp_path, controller, speaker, lab)
    assert written(out) == {"controller.svg", "speaker-arp.svg", "client-outage.svg"}


def _peer(scale: float) -> dict[str, object]:
    dist = {"n": 3, "p50": 1.0 * scale, "p99": 2.0 * scale}
    return {
        "address_latency_s": dist,
        "bulk": {"services": 30, "all_addressed_s": dist},
        "node_death": {"takeover_s": dist},
        "handover": {"takeover_s": dist},
        "arp_reply_ms": dist,
        "memory_mb": {"controller": {"node1/10": 40.0}, "speaker": {"node2/11": 30.0}},
        "api_writes_steady": {"per_s": 0.5},
    }


def test_lbctl_and_metallb_from_one_run_give_the_peers_figure_and_one_alone_none(
    tmp_path: Path,
) -> None:
    none = tmp_path / "none.json"
    both = tmp_path / "peers.json"
    both.write_text(json.dumps({"kubernetes": "v1.34.4", "metallb": "v0.16.2",
                                "peers": {"lbctl": _peer(1), "metallb": _peer(2)}}))  # fmt: skip
    assert "peers.svg" in written(run(tmp_path / "a", none, none, none, both))
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps({"peers": {"lbctl": _peer(1)}}))
    assert "peers.svg" not in written(run(tmp_path / "b", none, none, none, alone))
