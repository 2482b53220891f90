"""`dae report RUN [RUN ...] --out DIR`: a Markdown table comparing runs, and the paper's plots.

The tables: each run's `eval.json` metrics, two arms paired run by run (`--against`,
dae/metrics/paired.py), whether each run's held-out test curve has flattened
(`dae.metrics.curves`), each stage's discriminator verdict (`dae.metrics.discriminator`), and for
VQ runs the step at which the commitment loss jumped (the better codebook mode of
docs/results.md, `dae.metrics.mode`). The figures (dae/metrics/figures.py):
loss curves across the DAE stages with the stages shaded (Figure 3), Lipschitz complexity (Figure
4), codebook statistics (Figure 6), the latent diagnostics, and each run's reconstruction grid.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dae.files import atomic_write
from dae.metrics.curves import CONVERGED, convergence
from dae.metrics.discriminator import (
    MIN_GAP,
    NEAR_CHANCE,
    SMOOTH,
    TAIL,
    WON,
    discriminator_health,
    smoothed_gan_rows,
    warning_text,
)
from dae.metrics.figures import (
    plot_codebooks,
    plot_curves,
    plot_diagnostics,
    plot_paired,
    run_labels,
)
from dae.metrics.mode import FACTOR, WINDOW, run_mode
from dae.metrics.paired import markdown_lines as paired_lines
from dae.run_folder import RunFolder

# Table columns, in order, when present in any run's eval.json (others follow alphabetically).
LEAD_COLUMNS = ["mse", "psnr", "ssim", "knn_latent_acc", "knn_recon_acc"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "–" if v is None else str(v)


def _weights(evaluation: dict[str, Any]) -> str:
    """`final @ step 400` or `checkpoint @ step 200 (stage1)`; `?` for an older eval.json."""
    if "weights" not in evaluation:
        return "?"
    stage = f" ({evaluation['stage']})" if evaluation.get("stage") else ""
    return f"{evaluation['weights']} @ step {evaluation['step']}{stage}"


def discriminator_verdicts(runs: list[Path]) -> dict[Path, list[dict[str, Any]]]:
    """`discriminator_health` of each run that trained a discriminator, with its loss and factor."""
    verdicts = {}
    for run in runs:
        if not RunFolder(run).metrics_path.is_file():
            continue
        disc = RunFolder(run).read_config_or_empty().get("disc") or {}
        health = discriminator_health(
            RunFolder(run).read_metrics(), disc.get("loss", "hinge"), float(disc.get("factor", 1.0))
        )
        if health:
            verdicts[run] = health
    return verdicts


def discriminator_warnings(runs: list[Path]) -> list[str]:
    """`warning_text` for each stage, of each run, whose discriminator sat at chance or won."""
    labels = run_labels(runs)
    return [
        text
        for run, health in discriminator_verdicts(runs).items()
        for h in health
        if (text := warning_text(labels[run], h))
    ]


def convergence_notes(runs: list[Path]) -> list[str]:
    """One sentence per run with held-out rows: its last test L1 and whether its final stage's
    test curve has flattened, so that `dae train` says so when a run ends."""
    labels = run_labels(runs)
    notes = []
    for run, c in _from_logs(runs, convergence).items():
        head = (
            f"{labels[run]}: held-out test L1 {c['test_l1']:.4g} (PSNR {c['test_psnr']:.2f}) "
            f"at step {c['step']}"
        )
        if c["flat"] is None:
            tail = "too few held-out rows in its final stage to tell whether it has converged"
        else:
            gain = f"the last 20 % of its {c['stage']} steps gained {_percent(c['stage_flatness'])}"
            tail = (
                f"{gain}: flat (under {100 * CONVERGED:g} %)"
                if c["flat"]
                else f"{gain}: not flat ({100 * CONVERGED:g} % or more), more steps may still help"
            )
        notes.append(f"{head}; {tail}")
    return notes


def _discriminator_lines(
    verdicts: dict[Path, list[dict[str, Any]]], labels: dict[Path, str]
) -> list[str]:
    """The discriminator table (no GAN in any run: no lines)."""
    if not verdicts:
        return []
    lines = [
        "## Discriminator (training log)",
        "",
        f"Means over the last {TAIL:.0%} of each stage's GAN log rows. At chance: `d_loss` within "
        f"{1 - NEAR_CHANCE:.0%} of the loss of logits 0 and real and fake logits less than "
        f"{MIN_GAP:g} apart (a blind discriminator, or a decoder that keeps up with it: compare "
        "FD-classifier with a run without the GAN); won outright: `d_loss` "
        f"below {WON:.0%} of chance, where the adaptive weight shrinks the generator term to "
        "nothing. Off chance from: the step from which the trailing means of the plot below "
        f"({SMOOTH} rows) stayed off chance (a fresh discriminator can sit at chance for thousands "
        "of GAN steps; a stage shorter than that gets little from it).",
        "",
        "| run | stage | GAN rows (steps) | averaged from | d_loss | chance | logit real − fake "
        "| adaptive weight | off chance from | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run, health in verdicts.items():
        for h in health:
            verdict = h["verdict"] if h["verdict"] == "learning" else f"**{h['verdict']}**"
            lines.append(
                f"| {labels[run]} | {h['stage']} | {h['first_step']}–{h['last_step']} "
                f"| {h['tail_from']} | {h['d_loss']:.3g} | {h['chance']:.3g} "
                f"| {h['logit_gap']:.3g} | {_fmt(h['d_weight'])} "
                f"| {_fmt(h['settled_from'])} | {verdict} |"
            )
    return [*lines, ""]


def _from_logs(runs: list[Path], read: Callable[[list[dict]], Any]) -> dict[Path, Any]:
    """`read` of each run's metrics.jsonl rows, for the runs that have one and where it is not
    None."""
    got = {}
    for run in runs:
        if RunFolder(run).metrics_path.is_file():
            value = read(RunFolder(run).read_metrics())
            if value is not None:
                got[run] = value
    return got


def _percent(v: float) -> str:
    # NaN: too few held-out rows. Two decimals, so that a gain near the 2 % line reads as its side.
    return "–" if v != v else f"{100 * v:.2f} %"


def _convergence_lines(runs: list[Path], labels: dict[Path, str]) -> list[str]:
    """Has each run's held-out test curve flattened? (none logged held-out rows: no lines)"""
    convs = _from_logs(runs, convergence)
    if not convs:
        return []
    lines = [
        "## Convergence (held-out test curve, `log.test_every`)",
        "",
        "The relative test-L1 gain over the last 20 % of the steps: mean held-out L1 over "
        "(60 %, 80 %] against (80 %, 100 %] of the final stage (a DAE run's stage-2 decoder is "
        "judged on its own stage) and of the whole run, and point to point (the 3 rows nearest "
        f"80 % of the run against the last 3). Flat: the final stage's gain under "
        f"{100 * CONVERGED:g} % (`dae.metrics.curves`); a run that is not flat may still "
        "improve with more steps.",
        "",
        "| run | last held-out step (stage) | test L1 | test PSNR | last 20 %, final stage "
        "| whole run | point to point | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    verdict = {True: "yes", False: "**no**", None: "too few rows"}
    for run, c in convs.items():
        lines.append(
            f"| {labels[run]} | {c['step']} ({c['stage']}) | {c['test_l1']:.4g} | "
            f"{c['test_psnr']:.2f} | {_percent(c['stage_flatness'])} | "
            f"{_percent(c['flatness'])} | {_percent(c['point_flatness'])} | {verdict[c['flat']]} |"
        )
    return [*lines, ""]


def _mode_lines(runs: list[Path], labels: dict[Path, str]) -> list[str]:
    """The codebook-mode table of the VQ runs among `runs` (none: no lines)."""
    modes = _from_logs(runs, run_mode)
    if not modes:
        return []
    lines = [
        "## VQ codebook mode (training commitment loss)",
        "",
        f"The commitment loss averaged over {WINDOW} log rows (stage 2, with the encoder "
        f"frozen, left out). A rise to {FACTOR:g}x its lowest value that lasts to the "
        "last row marks the better codebook mode of docs/results.md (lower test L1); in an "
        "unfinished run it may still come, or fall back. Latent dims: the last held-out "
        "row's `test_latent_dims` (channel directions holding 99 % of the latent's variance), "
        "and the held-out step from which the count stayed at that value. Codes used: the "
        "distinct codes of that row's held-out images (`test_codebook_used`) and their "
        "perplexity.",
        "",
        "| run | jump step | lowest before it | last (step) | latent dims | since step "
        "| codes used (perplexity) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run, m in modes.items():
        jump = "none" if m["jump_step"] is None else str(m["jump_step"])
        last = f"{m['last']:.4g} ({m['last_step']})"
        dims = f"{_fmt(m['latent_dims'])} | {_fmt(m['latent_dims_since'])}"
        codes = (
            "–" if m["codes_used"] is None else f"{m['codes_used']} ({m['code_perplexity']:.0f})"
        )
        lines.append(f"| {labels[run]} | {jump} | {m['lowest']:.4g} | {last} | {dims} | {codes} |")
    return [*lines, ""]


def write_report(runs: list[Path], out: Path, paired: dict[str, Any] | None = None) -> Path:
    """Write `out/report.md` and its PNGs; returns the Markdown path. `paired`: the comparison of
    two arms among `runs` (`dae.metrics.paired.compare`), tabled after the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    evals = {run: RunFolder(run).read_eval() for run in runs}
    labels = run_labels(runs)
    lines = ["# dae report", "", "Runs: " + ", ".join(f"`{run}`" for run in runs), ""]
    measured = {run: e for run, e in evals.items() if e}
    if measured:
        keys = {k for e in measured.values() for k in e["metrics"] if not k.endswith("_std")}
        columns = [k for k in LEAD_COLUMNS if k in keys] + sorted(keys - set(LEAD_COLUMNS))
        # One row per metric, one column per run: many metrics, few runs, and it stays readable.
        lines += [
            "## Metrics (`dae evaluate`)",
            "",
            "| metric | " + " | ".join(labels[r] for r in measured) + " |",
            "|---|" + "---:|" * len(measured),
            # Which weights were measured: an unfinished run's checkpoint is not a final model.
            "| weights | " + " | ".join(_weights(e) for e in measured.values()) + " |",
        ]
        for c in columns:
            lines.append(
                f"| {c} | "
                + " | ".join(_fmt(e["metrics"].get(c)) for e in measured.values())
                + " |"
            )
        lines.append("")
        for run, e in measured.items():
            feats = (
                f"features `{e['features']}` {e.get('feature_info', {})}"
                if "features" in e
                else "no feature metrics"
            )
            notes = "; ".join(f"{k}: {v}" for k, v in e["skipped"].items()) or "none"
            lines.append(
                f"- {labels[run]}: {e['n']} held-out {e['data']} examples; {feats}; skipped: {notes}"
            )
        lines.append("")
    if paired is not None:
        lines += paired_lines(paired, labels)
    lines += _convergence_lines(runs, labels)
    lines += _mode_lines(runs, labels)
    lines += _discriminator_lines(discriminator_verdicts(runs), labels)
    missing = [run for run, e in evals.items() if not e]
    if missing:
        lines += [
            "Not evaluated (run `dae evaluate` first): " + ", ".join(f"`{r}`" for r in missing),
            "",
        ]
    figures = [
        (
            "loss_curves.png",
            "Training curves across stages (paper Figure 3)",
            lambda p: plot_curves(runs, p, "", "lipschitz/", "training curves", log_y=False),
        ),
        (
            "lipschitz.png",
            "Lipschitz complexity of encoder and decoder during training (paper Figure 4)",
            lambda p: plot_curves(runs, p, "lipschitz/", None, "Lipschitz complexity", log_y=True),
        ),
        (
            "discriminator.png",
            f"Discriminator: d_loss and logit real − fake, means over {SMOOTH} GAN log rows",
            lambda p: plot_curves(runs, p, "", None, "discriminator", False, smoothed_gan_rows),
        ),
        ("codebook.png", "Codebook analysis (paper Figure 6)", lambda p: plot_codebooks(evals, p)),
        (
            "diagnostics.png",
            "Latent diagnostics: DCT spectrum and GMM modes",
            lambda p: plot_diagnostics(evals, p),
        ),
    ]
    if paired is not None:
        figures.insert(
            0,
            (
                "paired.png",
                "Paired differences, runs − against, pair by pair",
                lambda p: plot_paired(paired, p),
            ),
        )
    for name, caption, draw in figures:
        if draw(out / name):
            lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    for i, run in enumerate(runs):
        grid = RunFolder(run).eval_grid_path
        if grid.is_file():
            name = f"recon_{i}_{run.name}.png"
            atomic_write(out / name, lambda tmp, grid=grid: shutil.copyfile(grid, tmp))
            lines += [
                f"## Reconstructions: {labels[run]} (top real, bottom reconstructed)",
                "",
                f"![]({name})",
                "",
            ]
    md = out / "report.md"
    atomic_write(md, lambda tmp: tmp.write_text("\n".join(lines)))
    return md
