"""The figures of `dae report`: training curves with the DAE stages shaded (paper Figure 3),
encoder/decoder Lipschitz complexity (Figure 4), codebook cosine-similarity histograms, eigenvalue
decay and sorted code usage (Figure 6), and the latent diagnostics (DCT spectrum, GMM BIC curve).
Each writes one PNG atomically, and returns False when no run has what it draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dae.plots import pyplot, save_png
from dae.run_folder import RunFolder

STAGE_COLOURS = {"stage1": "#fde9c9", "stage2": "#d9ecf9", "joint": "#ffffff"}


def run_labels(runs: list[Path]) -> dict[Path, str]:
    """Short, unique labels: the folder name, or parent/name where names collide."""
    names = [run.name or str(run) for run in runs]
    return {
        run: name if names.count(name) == 1 else f"{run.parent.name}/{name}"
        for run, name in zip(runs, names, strict=True)
    }


def _stage_spans(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(stage, first step, last step) spans of consecutive logged rows."""
    spans: list[tuple[str, int, int]] = []
    for row in rows:
        stage = row.get("stage", "joint")
        if spans and spans[-1][0] == stage:
            spans[-1] = (stage, spans[-1][1], row["step"])
        else:
            start = spans[-1][2] if spans else 0
            spans.append((stage, start, row["step"]))
    return spans


def _numeric_keys(
    rows: list[dict[str, Any]], prefix: str = "", exclude: str | None = None
) -> list[str]:
    keys = {k for r in rows for k, v in r.items() if isinstance(v, int | float) and k != "step"}
    keys = {k for k in keys if k.startswith(prefix) and not (exclude and k.startswith(exclude))}
    return sorted(keys)


def plot_curves(
    runs: list[Path],
    out: Path,
    prefix: str,
    exclude: str | None,
    title: str,
    log_y: bool,
    derive: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> bool:
    """One panel per metric key, one line per run, stages shaded; False if there is nothing to draw.

    `derive` turns a run's log rows into the rows drawn (e.g. smoothed); stages come from the log.
    """
    histories = {
        run: RunFolder(run).read_metrics() if RunFolder(run).metrics_path.is_file() else []
        for run in runs
    }
    drawn = {run: derive(rows) if derive else rows for run, rows in histories.items()}
    keys = sorted({k for rows in drawn.values() for k in _numeric_keys(rows, prefix, exclude)})
    # A VQ run's "loss" and a KL run's are on other scales: one panel per key and model kind.
    kinds = {run: _model_kind(run) for run in runs}
    panels = [
        (key, kind)
        for key in keys
        for kind in sorted(set(kinds.values()))
        if any(key in r for run in runs if kinds[run] == kind for r in drawn[run])
    ]
    mixed = len(set(kinds.values())) > 1
    if not panels:
        return False
    plt = pyplot()
    labels = run_labels(runs)
    spans = {run: _stage_spans(rows) for run, rows in histories.items()}
    # Each model kind's panels shade the stages of its first two-stage run (a baseline first in the
    # list has nothing to shade); a KL panel shaded by a VQ run's stages would mislead.
    shaded = {}
    for kind in set(kinds.values()):
        own = [run for run in runs if kinds[run] == kind]
        shaded[kind] = next((run for run in own if len(spans[run]) > 1), own[0])
    cols = min(3, len(panels))
    n_rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(4.6 * cols, 3.4 * n_rows), squeeze=False)
    for ax, (key, kind) in zip(axes.flat, panels, strict=False):
        for i, (run, rows) in enumerate(drawn.items()):
            if kinds[run] != kind:
                continue
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=labels[run], color=f"C{i}")
            if run == shaded[kind]:
                for stage, a, b in spans[run]:
                    ax.axvspan(a, b, color=STAGE_COLOURS.get(stage, "#eeeeee"), zorder=0, lw=0)
            # another schedule: its stage changes as dashed lines
            elif spans[run] != spans[shaded[kind]]:
                for _, a, _ in spans[run][1:]:
                    ax.axvline(a, color=f"C{i}", ls="--", lw=1)
        ax.set_title(f"{key} ({kind})" if mixed else key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if log_y and all(r.get(key, 1) > 0 for rows in drawn.values() for r in rows):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    # One legend for the figure: a run missing from the first panel's metric is still named.
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    spare = len(panels) < n_rows * cols  # an empty panel slot holds the legend
    ncol = 1 if spare else min(4, len(handles))
    fig.legend(
        handles.values(),
        handles.keys(),
        fontsize=7,
        loc="lower right" if spare else "lower center",
        ncol=ncol,
    )
    fig.suptitle(
        f"{title} (shaded: stages of {', '.join(sorted(labels[r] for r in shaded.values()))}: "
        "stage 1 orange, stage 2 blue; dashed: other runs' stage changes)",
        fontsize=10,
    )
    # otherwise a strip below the panels, so that the legend covers no curve
    strip = 0.0 if spare else 0.13 * math.ceil(len(handles) / ncol) / (n_rows + 0.5)
    # and a strip above them for the title (matplotlib's tight_layout leaves it overlapping)
    fig.tight_layout(rect=(0, strip, 1, 1 - 0.35 / fig.get_figheight()))
    save_png(fig, out, layout=False)
    return True


def _model_kind(run: Path) -> str:
    """The run's `kind:` (vqgan, kl, toy_vae, ...) from its config.yaml; "?" if unreadable."""
    return str(RunFolder(run).read_config_or_empty().get("kind", "?"))


def plot_codebooks(evals: dict[Path, dict], out: Path) -> bool:
    """Cosine-similarity histograms, eigenvalue decay and sorted usage of every VQ run."""
    books = {run: e["codebook"] for run, e in evals.items() if e and "codebook" in e}
    if not books:
        return False
    plt = pyplot()
    labels = run_labels(list(evals))
    fig, (h_ax, e_ax, u_ax) = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, (run, book) in enumerate(books.items()):
        hist = book["cosine_histogram"]
        centres = [(a + b) / 2 for a, b in zip(hist["edges"][:-1], hist["edges"][1:], strict=True)]
        total = max(sum(hist["counts"]), 1)
        h_ax.plot(centres, [c / total for c in hist["counts"]], label=labels[run], color=f"C{i}")
        # The matrix has rank <= D + 1: drop the numerically-zero tail, show the first 64 ranks.
        eig = [abs(v) for v in book["eigenvalues"] if abs(v) > 1e-9][:64]
        e_ax.semilogy(range(1, len(eig) + 1), eig, marker=".", color=f"C{i}", label=labels[run])
        if "usage" in book:
            counts = book["usage"]["counts_sorted"]
            u_ax.plot(
                range(1, len(counts) + 1),
                counts,
                color=f"C{i}",
                label=f"{labels[run]} (ppl {book['usage']['perplexity']:.0f}, dead {book['usage']['dead_codes']})",
            )
    h_ax.set(
        title="pairwise cosine similarity of codes",
        xlabel="cosine similarity",
        ylabel="fraction of pairs",
    )
    e_ax.set(
        title="eigenvalues of cosine-distance matrix (non-zero, first 64)",
        xlabel="rank",
        ylabel="|eigenvalue| / max",
    )
    u_ax.set(title="code usage on the test set (sorted)", xlabel="code rank", ylabel="count")
    u_ax.set_yscale("symlog")
    for ax in (h_ax, e_ax, u_ax):
        ax.legend(fontsize=7)
    save_png(fig, out)
    return True


def plot_diagnostics(evals: dict[Path, dict], out: Path) -> bool:
    """Radial DCT power spectrum of the latents, their channel spectrum and the GMM BIC curve of
    every run that has them."""
    found = {run: e["diagnostics"] for run, e in evals.items() if e and e.get("diagnostics")}
    if not found:
        return False
    plt = pyplot()
    labels = run_labels(list(evals))
    fig, (s_ax, c_ax, b_ax) = plt.subplots(1, 3, figsize=(15, 3.8))
    for i, (run, diag) in enumerate(found.items()):
        metrics = evals[run]["metrics"]
        hf = metrics.get("latent_hf_fraction", float("nan"))
        curves = [  # (axis, values from x = 1, legend); the spectrum's DC term is removed (zero)
            (s_ax, diag.get("dct_spectrum", [0.0])[1:], f"{labels[run]} (HF {hf:.2f})"),
            (b_ax, diag["gmm"]["bic"], f"{labels[run]} ({metrics.get('gmm_modes')} modes)"),
            (  # an eval.json written before the channel spectrum existed draws no curve
                c_ax,
                [max(v, 1e-6) for v in diag.get("channel_spectrum", [])[:16]],  # log axis
                f"{labels[run]} ({metrics.get('latent_pca_dims')} dims)",
            ),
        ]
        for ax, values, label in curves:
            if values:
                ax.plot(range(1, len(values) + 1), values, ".-", color=f"C{i}", label=label)
    s_ax.set_yscale("log")
    s_ax.set(
        title="DCT power of the latents (mean removed)",
        xlabel="radial frequency sqrt(i² + j²)",
        ylabel="mean power",
    )
    c_ax.set_yscale("log")
    c_ax.set(
        title="channel spectrum of the latents (first 16)",
        xlabel="principal direction",
        ylabel="fraction of the variance",
    )
    c_ax.axhline(0.01, color="0.6", lw=0.8, ls=":")  # below it, a direction hardly counts
    b_ax.set(
        title="GMM on a PCA of the latents", xlabel="components", ylabel="BIC (lower is better)"
    )
    for ax in (s_ax, c_ax, b_ax):
        if ax.get_legend_handles_labels()[0]:  # a run without this statistic draws no curve
            ax.legend(fontsize=7)
    save_png(fig, out)
    return True


def plot_paired(paired: dict[str, Any], out: Path, max_panels: int = 12) -> bool:
    """One panel per metric with a known direction (`dae report --against`): each pair's
    difference as a dot, the mean as a line, zero dashed, and the side where the first arm is
    better shaded, so the spread that a p-value summarises can be seen."""
    from dae.metrics.paired import arrow, higher_is_better
    from dae.metrics.stats import format_p

    metrics = [
        (key, t) for key, t in paired["metrics"].items() if higher_is_better(key) is not None
    ][:max_panels]
    if not metrics:
        return False
    plt = pyplot()
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, (key, t) in zip(axes.flat, metrics):
        diffs = t["differences"]
        pairs = range(1, len(diffs) + 1)
        span = max(abs(d) for d in diffs) * 1.3 or 1.0
        up = higher_is_better(key)
        ax.axhspan(0, span if up else -span, color="#dff2df", zorder=0)  # first arm better
        ax.axhline(0, color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(t["mean_diff"], color="C1", linewidth=1.2, label=f"mean {t['mean_diff']:+.3g}")
        ax.scatter(pairs, diffs, color="C0", zorder=3)
        ax.set_ylim(-span, span)
        ax.set_xticks(list(pairs))
        ax.set_title(f"{key}{arrow(key)}\nt-test p {format_p(t['t_p'])}", fontsize=8)
        ax.set_xlabel("pair", fontsize=8)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle("runs − against, pair by pair (green: the first arm better)", fontsize=9)
    save_png(fig, out)
    return True
