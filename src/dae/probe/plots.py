"""The probe's two figures: test error against decoder width, and the decoders' training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dae.plots import pyplot, save_png


def _label(entry: dict[str, Any]) -> str:
    run = entry["run"]
    mode = run["schedule"] + (f"/{run['weak_decoder']}" if run.get("weak_decoder") else "")
    return f"{run['name']} ({mode})"


def plot_widths(summary: dict[str, Any], path: Path) -> None:
    """Test L1 and PSNR against decoder width (log x), one line per run: a better latent reaches a
    given error with a narrower decoder."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for entry in summary["runs"]:
        decoders = sorted(entry["decoders"], key=lambda d: d["width"])
        widths = [d["width"] for d in decoders]
        for ax, metric in zip(axes, ("l1", "psnr"), strict=True):
            ax.plot(widths, [d["test"][metric] for d in decoders], "o-", label=_label(entry))
    widths = summary["config"]["widths"]
    for ax, title in zip(axes, ("test L1 (lower is better)", "test PSNR, dB"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [f"{w:g}" for w in widths])
        ax.minorticks_off()
        ax.set_xlabel("decoder width (x the run's ch)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    steps = summary["config"]["steps"]
    fig.suptitle(f"Decoder probe: fresh decoders on frozen latents, {steps} steps each")
    save_png(fig, path, dpi=120)


def plot_curves(summary: dict[str, Any], path: Path) -> None:
    """One panel per width: each run's training L1 (line; each point the mean of the preceding
    `curve_every` steps) and test L1 checkpoints (markers)."""
    plt = pyplot()
    widths = summary["config"]["widths"]
    fig, axes = plt.subplots(1, len(widths), figsize=(4.5 * len(widths), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, entry in enumerate(summary["runs"]):
        colour = colours[i % len(colours)]
        for d in entry["decoders"]:
            if d["width"] not in widths:
                continue
            ax = axes[0][widths.index(d["width"])]
            train, test = d["curve"]["train_l1"], d["curve"]["test_l1"]
            ax.plot(*zip(*train, strict=True), color=colour, label=_label(entry))
            ax.plot(*zip(*test, strict=True), "o--", color=colour, markersize=4)
    for ax, width in zip(axes[0], widths, strict=True):
        ax.set_title(f"width {width:g}: train L1 (line), test L1 (dots)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    save_png(fig, path, dpi=120)
