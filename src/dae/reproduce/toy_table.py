"""Runs the toy table (paper Table 2, left) over seeds and writes results.json, a table and a figure."""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dae.config import from_dict, replace, to_dict
from dae.files import atomic_write
from dae.metrics.stats import format_p, paired_test
from dae.plots import pyplot, save_png
from dae.progress import progress_bar
from dae.reproduce.toy import ToyExperimentConfig, toy_accuracies, train_toy


@dataclass(frozen=True)
class Row:
    """One table row: a model variant (config overrides) and the accuracy it reports."""

    name: str
    metric: str
    overrides: tuple[str, ...]
    paper_mean: float
    paper_std: float


ROWS = (
    Row(
        "latent: enc 64 / dec 128",
        "latent_acc",
        ("model.enc_hidden=64", "model.dec_hidden=128"),
        80.6,
        7.0,
    ),
    Row(
        "latent: enc 128 / dec 64",
        "latent_acc",
        ("model.enc_hidden=128", "model.dec_hidden=64"),
        87.8,
        5.8,
    ),
    Row(
        "recon: joint 128 / 128",
        "recon_acc",
        ("model.enc_hidden=128", "model.dec_hidden=128", "schedule.mode=baseline"),
        92.2,
        6.1,
    ),
    Row(
        "recon: DAE 128 / 128",
        "recon_acc",
        ("model.enc_hidden=128", "model.dec_hidden=128", "schedule.mode=dae"),
        98.0,
        1.3,
    ),
)
FIGURE_ROWS = (2, 3)  # the latents drawn: joint vs DAE at equal width and budget
# The paper's two effects, as (reference row, row expected to be better); seeds share their data.
COMPARISONS = ((0, 1), (2, 3))


def paired(better: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Per-seed difference `better - reference` (same seed = same data) and its paired tests."""
    test = paired_test(reference["seeds"], better["seeds"])
    return {"better": better["name"], "reference": reference["name"], **test.as_dict()}


def _job(args: tuple[dict[str, Any], tuple[str, ...], int, bool]) -> dict[str, Any]:
    base, overrides, seed, keep_latent = args
    torch.set_num_threads(1)  # one process per core beats two threads on these tiny nets
    cfg = replace(from_dict(ToyExperimentConfig, base), [*overrides, f"train.seed={seed}"])
    task = train_toy(cfg)
    result: dict[str, Any] = toy_accuracies(task)
    if keep_latent:
        with torch.no_grad():
            mu, _ = task.model.encode(task.data.x_test)
        result["latent"] = mu.tolist()
        result["labels"] = task.data.y_test.tolist()
    return result


def run_table(
    base: ToyExperimentConfig, seeds: int, workers: int, out: Path | None, progress: bool = True
) -> dict[str, Any]:
    """Train every row for `seeds` seeds (in `workers` processes) and collect the accuracies."""
    base = replace(base, ["train.progress=false", "train.tensorboard=false"])
    base_dict = to_dict(base)
    jobs = [
        (base_dict, row.overrides, seed, seed == 0 and i in FIGURE_ROWS)
        for i, row in enumerate(ROWS)
        for seed in range(seeds)
    ]
    start = time.time()
    bar = progress_bar(total=len(jobs), desc="toy table", unit="run", disable=not progress)
    results = []
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(_job, jobs):
                results.append(res)
                bar.update(1)
    else:
        for job in jobs:
            results.append(_job(job))
            bar.update(1)
    bar.close()
    rows = []
    for i, row in enumerate(ROWS):
        runs = results[i * seeds : (i + 1) * seeds]
        values = [100 * r[row.metric] for r in runs]
        rows.append(
            {
                "name": row.name,
                "metric": row.metric,
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "seeds": values,
                "data_acc_mean": statistics.fmean(100 * r["data_acc"] for r in runs),
                "paper": {"mean": row.paper_mean, "std": row.paper_std},
                "overrides": list(row.overrides),
            }
        )
    summary = {
        "experiment": "toy gaussian mixture (paper Sec. 6.1, Table 2 left)",
        "comparisons": [paired(rows[b], rows[a]) for a, b in COMPARISONS],
        "seeds": seeds,
        "seconds": round(time.time() - start, 1),
        "config": base_dict,
        "rows": rows,
    }
    if out is not None:
        write_outputs(out, summary, [results[i * seeds] for i in FIGURE_ROWS])
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    """The table as Markdown: ours beside the paper's, mean (std) over seeds, in percent."""
    lines = [
        f"| row | metric | dae, mean (std) over {summary['seeds']} seeds | paper |",
        "|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['name']} | {r['metric']} | {r['mean']:.1f} ({r['std']:.1f}) "
            f"| {r['paper']['mean']:.1f} ({r['paper']['std']:.1f}) |"
        )
    lines.append("")
    for c in summary["comparisons"]:
        lines.append(
            f"- {c['better']} vs {c['reference']}: {c['mean_diff']:+.1f} points per seed "
            f"(std {c['std_diff']:.1f}); better on {c['wins']}, equal on {c['ties']}, "
            f"worse on {c['losses']} seeds; paired t-test p = {format_p(c['t_p'])}, "
            f"sign test p = {format_p(c['sign_p'])}"
        )
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, summary: dict[str, Any], figure_runs: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    atomic_write(out / "results.md", lambda p: p.write_text(markdown_table(summary)))
    plot_latents(out / "latents.png", figure_runs, [ROWS[i].name for i in FIGURE_ROWS])


def plot_latents(path: Path, runs: list[dict[str, Any]], titles: list[str]) -> None:
    """Side-by-side scatter of held-out 2-D latent means, coloured by cluster label."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4.6))
    for ax, run, title in zip(axes, runs, titles):
        z = torch.tensor(run["latent"])
        ax.scatter(z[:, 0], z[:, 1], c=run["labels"], cmap="tab10", s=4, vmin=0, vmax=9)
        ax.set_title(
            f"{title}\nlatent k-NN acc {100 * run['latent_acc']:.1f}%, "
            f"recon {100 * run['recon_acc']:.1f}%",
            fontsize=10,
        )
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle("Toy mixture: 2-D latent means of held-out points (seed 0)")
    save_png(fig, path)
