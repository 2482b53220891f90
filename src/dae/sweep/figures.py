"""A sweep's figures: `sweep.png`, reconstruction quality against the generation proxy per
weakness setting, and `sweep_curves.png`, each variant's held-out test curve. matplotlib is
imported when a figure is drawn, so that the tables need none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dae.metrics.paired import arrow
from dae.plots import pyplot, save_png
from dae.sweep.plan import BASELINE

RECON_KEYS = ("psnr", "mse")  # x axis of sweep.png: the first present


def metric_label(metric: str, summary: dict[str, Any]) -> str:
    """A metric's name in the tables and on the axes, with its direction (↑ / ↓)."""
    name = metric
    if metric == "proxy":
        name = "proxy " + "/".join(summary["proxy_sources"])
    return name + arrow(name)


def plot_proxy(summary: dict[str, Any], path: Path) -> bool:
    """Reconstruction quality vs the generation proxy, one line per weakness key; False if no data."""
    table = summary["table"]
    recon = next((k for k in RECON_KEYS if any(k in r["metrics"] for r in table.values())), None)
    if recon is None or not summary["proxy_sources"]:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    groups: dict[str, list[tuple[Any, dict]]] = {}
    for row in table.values():
        if recon in row["metrics"] and "proxy" in row["metrics"]:
            groups.setdefault(row["weakness"] or BASELINE, []).append(
                (row["value"], row["metrics"])
            )
    for key, points in groups.items():
        points.sort(key=lambda p: (p[0] is None, p[0]))
        xs = [m[recon]["mean"] for _, m in points]
        ys = [m["proxy"]["mean"] for _, m in points]
        ax.errorbar(
            xs,
            ys,
            xerr=[m[recon]["std"] for _, m in points],
            yerr=[m["proxy"]["std"] for _, m in points],
            marker="*" if key == BASELINE else "o",
            markersize=12 if key == BASELINE else 6,
            color="black" if key == BASELINE else None,
            linestyle="none" if key == BASELINE else "-",
            capsize=3,
            label=key,
        )
        for (value, _), x, y in zip(points, xs, ys):
            if value is not None:
                ax.annotate(str(value), (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel(metric_label(recon, summary) + " (reconstruction)")
    ax.set_ylabel(metric_label("proxy", summary) + " (generation proxy)")
    ax.set_title(f"{summary['config']}: mean ± std over {summary['seeds']} seeds")
    ax.legend(fontsize=8)
    save_png(fig, path)
    return True


def mean_curve(
    curves: list[list[list[float]]],
) -> tuple[list[float], list[float], list[np.ndarray]]:
    """Steps, mean and spread (min, max) over seeds of [step, value] curves, at the steps every
    curve logged (seeds of one variant log the same steps; a run cut short ends the mean early)."""
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    values = np.array([[by_step[step] for step in common] for by_step in map(dict, curves)])
    return common, values.mean(axis=0).tolist(), [values.min(axis=0), values.max(axis=0)]


def plot_test_curves(summary: dict[str, Any], path: Path) -> bool:
    """Held-out test L1 against the step, the mean over seeds per variant with the seeds' range
    shaded; False when no run logged held-out rows."""
    by_variant: dict[str, list] = {}
    for r in summary["runs"]:
        if r.get("test_curve"):
            by_variant.setdefault(r["variant"], []).append(r["test_curve"])
    if not by_variant:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for variant, curves in by_variant.items():
        steps, mean, (lo, hi) = mean_curve(curves)
        base = variant == BASELINE
        (line,) = ax.plot(steps, mean, color="black" if base else None, lw=2 if base else 1.2,
                          label=f"{variant} (n={len(curves)})")  # fmt: skip
        if len(curves) > 1:
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out test L1 ↓")
    ax.set_yscale("log")
    ax.set_title(f"{summary['config']}: mean over seeds, range shaded")
    ax.legend(fontsize=8)
    save_png(fig, path)
    return True
