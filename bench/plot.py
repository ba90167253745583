"""Figures for docs/benchmarks.md from the benchmarks' JSON results (reads JSON, writes SVG).

Each figure puts lbctl beside its floor where the benchmark measured one, and draws the target
from docs/benchmarks.md as a dashed line. Where a result keeps its raw samples (a list under
``samples``, ``*_samples``, ``samples_*``, ``latencies_ms`` or ``outages_s``) the figure is a CDF;
where not, bars are drawn from the percentiles. Sections a result lacks are left out quietly.

    python bench/plot.py [--controller FILE] [--speaker FILE] [--lab FILE] [--out-dir DIR]

The SVGs keep text as text (no embedded glyphs) and carry no date or random ids, so running
this again on the same results gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import matplotlib.style
import matplotlib.ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.typing import ColorType

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

LBCTL = "#1f77b4"
LBCTL_LIGHT = "#9ecae1"
FLOOR = "#8c8c8c"
TARGET = "#d62728"

# Fixed settings so the output depends on the data only, not on a local matplotlibrc.
RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "lbctl-bench",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
METADATA = {"Date": None, "Creator": "lbctl bench/plot.py (matplotlib)"}

Result = Mapping[str, Any]


class Scenario(NamedTuple):
    """One failover measurement in speaker.json and how the docs name and bound it."""

    key: str
    label: str
    kill: bool  # a kill's target is its lease + 1 s; a handover's is 1 s


FAILOVER = (
    Scenario("failover_kill_defaults", "SIGKILL, defaults", kill=True),
    Scenario("failover_kill_tuned", "SIGKILL, tuned", kill=True),
    Scenario("handover_sigterm", "SIGTERM", kill=False),
    Scenario("handover_drain", "lbctl drain", kill=False),
)

_SAMPLE_KEY = re.compile(r"(^|_)samples($|_)|^outages_s$|^latencies_ms$")


def samples(section: Result, *, floor: bool = False) -> list[float] | None:
    """The raw samples a section kept, if any; ``floor`` picks the kernel_/floor_ series."""
    for key, value in section.items():
        is_floor = key.startswith(("kernel_", "floor_"))
        name = key.removeprefix("kernel_").removeprefix("floor_")
        if is_floor != floor or not _SAMPLE_KEY.search(name):
            continue
        if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
            return [float(v) for v in value]
    return None


def failover_target(section: Result, scenario: Scenario) -> float:
    """Docs: a kill is over within lease + 1 s; a SIGTERM or drain handover within 1 s."""
    return float(section["lease_duration_s"]) + 1.0 if scenario.kill else 1.0


def grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    fmt: str,
) -> list[float]:
    """Bars of each series side by side per group; returns the centre of each group."""
    width = 0.8 / len(series)
    centres = [float(i) for i in range(len(groups))]
    for n, (label, values, color) in enumerate(series):
        offset = (n - (len(series) - 1) / 2) * width
        bars = ax.bar([c + offset for c in centres], values, width, label=label, color=color)
        ax.bar_label(bars, fmt=fmt, padding=2, fontsize=8)
    ax.set_xticks(centres, groups)
    return centres


def target_segment(ax: Axes, centre: float, value: float, label: str | None = None) -> None:
    """A dashed target line across one group of bars."""
    ax.hlines(
        value,
        centre - 0.45,
        centre + 0.45,
        colors=TARGET,
        linestyles="dashed",
        label=label or "_target",
    )


def cdf(ax: Axes, values: Sequence[float], *, label: str, color: ColorType) -> None:
    ordered = sorted(values)
    fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
    ax.step(ordered, fractions, where="post", label=label, color=color)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fraction of samples")
    ax.grid(True, axis="both", alpha=0.3)


def log_scale(ax: Axes, axis: str) -> None:
    """A log axis labelled 0.01, 0.1, 1 rather than powers of ten."""
    plain = matplotlib.ticker.FuncFormatter(lambda value, _pos: f"{value:g}")
    if axis == "x":
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
    else:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)


def headroom(ax: Axes, factor: float = 1.18) -> None:
    """Room above the tallest bar for its label and the legend."""
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * factor)


def controller_figure(data: Result) -> Figure | None:
    """Allocation latency and the 5,000-Service bulk run, each beside the no-controller floor."""
    lat, floor = data.get("latency_ms"), data.get("latency_floor_ms")
    has_bulk = "bulk_seconds" in data and "bulk_floor_seconds" in data
    if not (lat and floor) and not has_bulk:
        return None
    panels = int(bool(lat and floor)) + int(has_bulk)
    fig = Figure(figsize=(3.6 * panels + 0.4, 3.4), layout="constrained")
    axes = iter(fig.subplots(1, panels, squeeze=False)[0])
    if lat and floor:
        ax = next(axes)
        target = 2 * float(floor["p50"])  # docs: p50 ratio to the floor <= 2
        ours, theirs = samples(lat), samples(floor)
        if ours and theirs:
            cdf(ax, ours, label="lbctl", color=LBCTL)
            cdf(ax, theirs, label="floor (client writes status)", color=FLOOR)
            ax.axvline(target, color=TARGET, linestyle="dashed", label="p50 target (2x floor)")
            ax.set_xlabel("Service created → address in status (ms)")
        else:
            centres = grouped_bars(
                ax,
                ["p50", "p99"],
                [
                    ("lbctl", [lat["p50"], lat["p99"]], LBCTL),
                    ("floor (client writes status)", [floor["p50"], floor["p99"]], FLOOR),
                ],
                fmt="%.1f",
            )
            target_segment(ax, centres[0], target, "target (2x floor p50)")
            ax.set_ylabel("ms")
            headroom(ax, 1.45)
        n = lat.get("samples")
        count = len(n) if isinstance(n, list) else n
        ax.set_title(f"Create → address, {count} samples" if count else "Create → address")
        ax.legend(loc="best" if ours and theirs else "upper left", fontsize=8)
    if has_bulk:
        ax = next(axes)
        floor_s = float(data["bulk_floor_seconds"])
        centres = grouped_bars(
            ax,
            [f"{data['bulk_services']:,} Services" if "bulk_services" in data else "all"],
            [("lbctl", [data["bulk_seconds"]], LBCTL), ("floor", [floor_s], FLOOR)],
            fmt="%.1f",
        )
        target_segment(ax, centres[0], 1.3 * floor_s, "target (1.3x floor)")
        ax.set_xlim(-0.8, 0.8)
        ax.set_ylabel("seconds until all addressed")
        ax.set_title("Bulk create → all addressed")
        headroom(ax, 1.35)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def arp_figure(speaker: Result) -> Figure | None:
    """ARP reply latency of the speaker beside the kernel answering for its own address."""
    arp = speaker.get("arp_latency")
    if not arp:
        return None
    target = 5.0  # docs: p99 <= 5 ms
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.subplots()
    ours, kernel = samples(arp), samples(arp, floor=True)
    if ours and kernel:
        cdf(ax, ours, label="lbctl speaker", color=LBCTL)
        cdf(ax, kernel, label="kernel (floor)", color=FLOOR)
        ax.axvline(target, color=TARGET, linestyle="dashed", label="p99 target (5 ms)")
        log_scale(ax, "x")
        ax.set_xlabel("ARP request → reply (ms, log scale)")
    else:
        centres = grouped_bars(
            ax,
            ["p50", "p99"],
            [
                ("lbctl speaker", [arp["p50_ms"], arp["p99_ms"]], LBCTL),
                ("kernel (floor)", [arp["kernel_p50_ms"], arp["kernel_p99_ms"]], FLOOR),
            ],
            fmt="%.3f",
        )
        target_segment(ax, centres[1], target, "p99 target (5 ms)")
        log_scale(ax, "y")
        ax.set_ylim(0.01, 20)
        ax.set_ylabel("ms (log scale)")
    title = "ARP reply latency"
    if "rate_per_s" in arp:
        title += f", {arp['rate_per_s']:.0f} requests/s"
    if "requests" in arp:
        title += f", {arp['requests']:,} requests"
    ax.set_title(title)
    ax.legend(loc="best" if ours and kernel else "upper left", fontsize=8)
    return fig


def failover_figure(speaker: Result) -> Figure | None:
    """Outage seen by the client for each way the owner goes away, against its target."""
    present = [(s, speaker[s.key]) for s in FAILOVER if speaker.get(s.key)]
    if not present:
        return None
    fig = Figure(figsize=(1.7 * len(present) + 1.6, 3.6), layout="constrained")
    ax = fig.subplots()
    labels = [
        f"{s.label}\nlease {sec['lease_duration_s']:g} s, renew {sec['renew_period_s']:g} s\n"
        f"{sec['trials']} trials"
        for s, sec in present
    ]
    raw = [samples(sec) for _, sec in present]
    if all(raw):
        colors = matplotlib.color_sequences["tab10"]
        for i, ((s, sec), values) in enumerate(zip(present, raw, strict=True)):
            color = colors[i % len(colors)]
            cdf(ax, values or [], label=s.label, color=color)
            ax.axvline(failover_target(sec, s), color=color, linestyle="dashed", alpha=0.7)
        log_scale(ax, "x")
        ax.set_xlabel("outage seen by the client (s, log scale); dashed: each target")
    else:
        centres = grouped_bars(
            ax,
            labels,
            [
                ("p50", [sec["p50_s"] for _, sec in present], LBCTL),
                ("p99", [sec["p99_s"] for _, sec in present], LBCTL_LIGHT),
            ],
            fmt="%.2f",
        )
        for n, (centre, (s, sec)) in enumerate(zip(centres, present, strict=True)):
            target_segment(
                ax,
                centre,
                failover_target(sec, s),
                "target (kill: lease + 1 s; handover: 1 s)" if n == 0 else None,
            )
        ax.set_ylabel("outage seen by the client (s)")
        ax.tick_params(axis="x", labelsize=8)
        headroom(ax, 1.12)
    missed = sum(int(sec.get("missed", 0)) for _, sec in present)
    ax.set_title(f"Failover and handover (missed takeovers: {missed})")
    ax.legend(loc="best" if all(raw) else "upper right", fontsize=8)
    return fig


# Peers' failover after the announcing node dies, at their defaults, as published
# (../shared/FIELD.md: MetalLB and PureLB measured by their users, kube-vip and Cilium from
# their issues and docs): (low, high) seconds.
PEERS_FAILOVER_S = {
    "MetalLB": (3.0, 4.0),
    "PureLB": (2.2, 6.7),
    "kube-vip": (13.0, 20.0),
    "Cilium L2": (10.0, 20.0),
}
FAST_ROWS = (
    ("fast_sigkill_defaults", "SIGKILL"),
    ("fast_link_defaults", "link down"),
    ("fast_freeze_defaults", "node frozen"),
    ("fast_sigkill_tuned", "SIGKILL\ntuned"),
    ("fast_link_tuned", "link down\ntuned"),
    ("fast_freeze_tuned", "node frozen\ntuned"),
    ("lease_only_sigkill", "SIGKILL\nLease only"),
)


def fast_failover_figure(speaker: Result) -> Figure | None:
    """Failover with LAN advertisements (defaults and tuned) beside the Lease-only path and
    the peers' published ranges: p50 and p99 bars, each against its target."""
    present = [(label, speaker[key], key) for key, label in FAST_ROWS if speaker.get(key)]
    if not present:
        return None
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    ax = fig.subplots()
    groups = [f"{label}\n{sec['trials']} trials" for label, sec, _ in present]
    groups += [f"{name}\n(published)" for name in PEERS_FAILOVER_S]
    p50 = [float(sec["p50_s"]) for _, sec, _ in present] + [
        lo for lo, _ in PEERS_FAILOVER_S.values()
    ]
    p99 = [float(sec["p99_s"]) for _, sec, _ in present] + [
        hi for _, hi in PEERS_FAILOVER_S.values()
    ]
    centres = grouped_bars(
        ax,
        groups,
        [("p50 (peers: low end)", p50, LBCTL), ("p99 (peers: high end)", p99, LBCTL_LIGHT)],
        fmt="%.2g",
    )
    for n, (centre, (_, sec, key)) in enumerate(zip(centres[: len(present)], present, strict=True)):
        if key.startswith("lease_only"):
            target = float(sec["lease_duration_s"]) + 1.0
        else:
            target = 0.3 if key.endswith("_tuned") else 1.0
        target_segment(ax, centre, target, "target" if n == 0 else None)
    log_scale(ax, "y")
    ax.set_ylabel("outage seen by the client (s, log scale)")
    ax.tick_params(axis="x", labelsize=7)
    missed = sum(int(sec.get("missed", 0)) for _, sec, _ in present)
    ax.set_title(f"Failover with LAN advertisements, Lease only, and peers (missed: {missed})")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def client_outage(speaker: Result, lab: Result) -> Result | None:
    """The optional client-outage section: in speaker.json, or lab.json (nested or whole)."""
    for source in (speaker, lab):
        section = source.get("client_outage")
        if isinstance(section, Mapping) and section:
            return section
    if "outages_s" in lab or "p50_s" in lab:
        return lab
    return None


def outage_figure(section: Result) -> Figure | None:
    """Per-trial outage a client sees through the whole stack, or its p50 and max."""
    outages = samples(section)
    if not outages and "p50_s" not in section:
        return None
    fig = Figure(figsize=(5.2, 3.2), layout="constrained")
    ax = fig.subplots()
    if outages:
        trials = list(range(1, len(outages) + 1))
        ax.bar(trials, outages, color=LBCTL, label="outage")
        ax.set_xlabel("trial")
        ax.set_xticks(trials if len(trials) <= 25 else trials[:: len(trials) // 10])
        p50 = section.get("p50_s")
        if p50 is None:
            p50 = sorted(outages)[len(outages) // 2]
        ax.axhline(float(p50), color=FLOOR, linestyle="dotted", label=f"p50 {float(p50):.2f} s")
    else:
        names = [k for k in ("p50_s", "p99_s", "max_s") if k in section]
        grouped_bars(
            ax,
            [k.removesuffix("_s") for k in names],
            [("outage", [section[k] for k in names], LBCTL)],
            fmt="%.2f",
        )
    if "target_s" in section:
        ax.axhline(float(section["target_s"]), color=TARGET, linestyle="dashed", label="target")
    ax.set_ylabel("seconds without an answer")
    trials_n = section.get("trials", len(outages or []))
    ax.set_title(f"Client outage on failover, {trials_n} trials")
    headroom(ax, 1.2)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def figures(controller: Result, speaker: Result, lab: Result) -> dict[str, Figure]:
    """Every figure the results allow, by file name; none is drawn for a missing section."""
    built = {
        "controller.svg": controller_figure(controller),
        "speaker-arp.svg": arp_figure(speaker),
        "speaker-failover.svg": failover_figure(speaker),
        "speaker-fast-failover.svg": fast_failover_figure(speaker),
    }
    outage = client_outage(speaker, lab)
    if outage is not None:
        built["client-outage.svg"] = outage_figure(outage)
    return {name: fig for name, fig in built.items() if fig is not None}


def load(path: Path) -> dict[str, Any]:
    """A result file, or an empty result when the benchmark has not been run."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


@contextmanager
def fixed_style() -> Iterator[None]:
    with matplotlib.style.context(["default", RC]):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controller", type=Path, default=RESULTS / "controller.json")
    ap.add_argument("--speaker", type=Path, default=RESULTS / "speaker.json")
    ap.add_argument("--lab", type=Path, default=RESULTS / "lab.json")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args(argv)
    controller, speaker, lab = load(args.controller), load(args.speaker), load(args.lab)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with fixed_style():
        built = figures(controller, speaker, lab)
        for name, fig in built.items():
            out = args.out_dir / name
            fig.savefig(out, format="svg", metadata=METADATA)
            print(out)
    if not built:
        print("no results to plot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
