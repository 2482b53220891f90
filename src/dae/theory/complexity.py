"""`dae complexity`: the induced distance d_c(P_z, P_x) for several latents of one data set."""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from dae.config import check, replace, to_dict
from dae.data.toy import make_toy_data
from dae.files import atomic_write
from dae.plots import pyplot, save_png
from dae.reproduce.toy import ToyExperimentConfig
from dae.theory.contrastive import ContrastiveConfig, train_contrastive
from dae.theory.estimator import EstimatorConfig, distance_curve, noise_floor, smallest_complexity
from dae.theory.latents import LATENTS, LatentData
from dae.theory.mnist import MnistVAEConfig, load_mnist_flat, train_mnist_vae


@dataclass
class ComplexityConfig:
    kind: Literal["complexity"] = "complexity"
    dataset: Literal["toy", "mnist"] = field(default="toy", metadata={"help": "toy or mnist"})
    latents: list[str] = field(
        default_factory=lambda: ["gaussian", "joint", "dae", "contrastive"],
        metadata={"help": "latents to compare (gaussian, joint, dae, contrastive)"},
    )
    n_train: int = field(default=2000, metadata={"help": "points the generators train on"})
    n_eval: int = field(default=2000, metadata={"help": "held-out points they are scored on"})
    seed: int = field(default=0, metadata={"help": "seed for data, VAEs and generators"})
    toy: ToyExperimentConfig = field(
        default_factory=ToyExperimentConfig,
        metadata={"help": "toy data + VAE (defaults are the toy experiment's)"},
    )
    mnist: MnistVAEConfig = field(default_factory=MnistVAEConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)

    def __post_init__(self) -> None:
        check(len(self.latents) >= 1, "latents", "must list at least one latent")
        for name in self.latents:
            check(name in LATENTS, "latents", f"unknown latent {name!r}; known: {LATENTS.names()}")
        check(self.n_train >= 2 and self.n_eval >= 2, "n_train", "n_train, n_eval must be >= 2")


def _toy_data(cfg: ComplexityConfig) -> LatentData:
    from dae.reproduce.toy import train_toy

    toy = replace(
        cfg.toy, [f"train.seed={cfg.seed}", "train.progress=false", "train.tensorboard=false"]
    )
    data = make_toy_data(toy.data, seed=toy.train.seed)  # the very set the VAEs train on

    def train_vae(mode: str) -> torch.nn.Module:
        model = train_toy(replace(toy, [f"schedule.mode={mode}"])).model
        model.use_aux_decoder = False
        return model

    return LatentData(
        x_train=data.x_train[: cfg.n_train],
        x_eval=data.x_test[: cfg.n_eval],
        latent_dim=toy.model.latent_dim,
        train_vae=train_vae,
        contrastive=lambda: train_contrastive(
            data.x_train, toy.model.latent_dim, cfg.contrastive, cfg.seed
        ),
        seed=cfg.seed,
    )


def _mnist_data(cfg: ComplexityConfig) -> LatentData:
    x, _ = load_mnist_flat("train", cfg.mnist.root)
    x_test, _ = load_mnist_flat("test", cfg.mnist.root)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = x[torch.randperm(len(x), generator=gen)[: cfg.mnist.n_train]]
    x_eval = x_test[torch.randperm(len(x_test), generator=gen)[: cfg.n_eval]]
    return LatentData(
        x_train=x[: cfg.n_train],
        x_eval=x_eval,
        latent_dim=cfg.mnist.latent_dim,
        train_vae=lambda mode: train_mnist_vae(cfg.mnist, x, mode, cfg.seed),
        contrastive=lambda: train_contrastive(x, cfg.mnist.latent_dim, cfg.contrastive, cfg.seed),
        seed=cfg.seed,
    )


def run_complexity(cfg: ComplexityConfig, out: Path | None, log=print) -> dict[str, Any]:  # noqa: ANN001
    """Curves for every latent, the eps-table, a figure and results.json in `out`."""
    start = time.time()
    data = _toy_data(cfg) if cfg.dataset == "toy" else _mnist_data(cfg)
    # Each VAE is trained once even if two latents were to use it.
    data.train_vae = functools.lru_cache(maxsize=None)(data.train_vae)
    est = replace(cfg.estimator, [f"seed={cfg.seed}"])
    floor = noise_floor(data.x_train[: cfg.n_eval], data.x_eval, est)
    curves = {}
    for name in cfg.latents:
        t0 = time.time()
        z_train, z_eval = LATENTS.get(name)(data)
        curves[name] = distance_curve(z_train, z_eval, data.x_train, data.x_eval, est)
        best = ", ".join(f"{p['complexity']:g}: {p['best']:.4f}" for p in curves[name]["points"])
        log(f"[{name}] {time.time() - t0:.0f} s  best MMD per c: {best}")
    table = {
        name: {str(eps): smallest_complexity(curve, eps) for eps in est.epsilons}
        for name, curve in curves.items()
    }
    summary = {
        "dataset": cfg.dataset,
        "config": to_dict(cfg),
        "noise_floor": floor,
        "curves": curves,
        "epsilon_table": table,
        "seconds": round(time.time() - start, 1),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(summary, indent=1, default=lambda v: None if v == math.inf else v)
        atomic_write(out / "results.json", lambda p: p.write_text(text))
        atomic_write(out / "results.md", lambda p: p.write_text(markdown_table(summary)))
        plot_curves(summary, out / "curves.png")
    return summary


def _table_header(columns: list[str]) -> list[str]:
    """A Markdown table's header and separator rows: a `latent` column, then `columns`."""
    return ["| latent | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]


def markdown_table(summary: dict[str, Any]) -> str:
    """Best MMD per complexity and the smallest complexity reaching each eps, as Markdown."""
    curves, table = summary["curves"], summary["epsilon_table"]
    ladder = [p["complexity"] for p in next(iter(curves.values()))["points"]]
    family = summary["config"]["estimator"]["generator"]["family"]
    lines = [
        f"Best held-out MMD (min over restarts; worst restart in parentheses) vs generator complexity "
        f"({family} family); noise floor {summary['noise_floor']:.4f}",
        "",
        *_table_header([f"c={c:g}" for c in ladder]),
    ]
    for name, curve in curves.items():
        cells = [f"{p['best']:.4f} (worst {p['worst']:.3f})" for p in curve["points"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    eps = list(next(iter(table.values())))
    lines += [
        "",
        "Smallest complexity reaching MMD <= eps (inf: none on the ladder)",
        "",
        *_table_header([f"eps={e}" for e in eps]),
    ]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[e]:g}" for e in eps) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(summary: dict[str, Any], path: Path) -> None:
    """Distance vs complexity, one line per latent (best restart), band = restart range."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, curve in summary["curves"].items():
        pts = curve["points"]
        xs = range(len(pts))
        (line,) = ax.plot(xs, [p["best"] for p in pts], "o-", label=name)
        ax.fill_between(
            xs,
            [p["best"] for p in pts],
            [p["worst"] for p in pts],
            color=line.get_color(),
            alpha=0.15,
        )
        # Nested families: the running minimum is also an upper bound on d_c (dashed).
        ax.plot(xs, [p.get("envelope", p["best"]) for p in pts], "--", color=line.get_color(), lw=1)
    ladder = [p["complexity"] for p in next(iter(summary["curves"].values()))["points"]]
    ax.set_xticks(range(len(ladder)), [f"{c:g}" for c in ladder])
    ax.axhline(summary["noise_floor"], color="grey", ls=":", label="noise floor (data vs data)")
    family = summary["config"]["estimator"]["generator"]["family"]
    ax.set_xlabel(
        "generator complexity c ("
        + ("hidden width" if family == "width" else "Lipschitz bound")
        + ")"
    )
    ax.set_ylabel("held-out MMD (best restart; band: all; dashed: running min)")
    # Linear scale: the unbiased estimate often reads exactly 0 (MMD^2 <= 0) at the noise floor.
    ax.set_ylim(bottom=0)
    ax.set_title(f"Complexity-induced distance, {summary['dataset']}", fontsize=10)
    ax.legend(fontsize=8)
    save_png(fig, path)


def aggregate(summaries: list[dict[str, Any]], epsilons: list[float]) -> str:
    """Seeds side by side: mean (sd) of the best MMD per complexity, eps-table per seed, Markdown."""
    import statistics

    names = list(summaries[0]["curves"])
    ladder = [p["complexity"] for p in summaries[0]["curves"][names[0]]["points"]]
    floors = [s["noise_floor"] for s in summaries]
    lines = [
        f"{len(summaries)} seeds; noise floor (data vs data) mean {statistics.fmean(floors):.4f}",
        "",
        *_table_header([f"c={c:g}" for c in ladder]),
    ]
    for name in names:
        cells = []
        for i in range(len(ladder)):
            vals = [s["curves"][name]["points"][i]["best"] for s in summaries]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.fmean(vals):.4f} ({sd:.4f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Smallest complexity reaching MMD <= eps, per seed",
        "",
        *_table_header([f"eps={e}" for e in epsilons]),
    ]
    for name in names:
        row = [
            ", ".join(f"{smallest_complexity(s['curves'][name], e):g}" for s in summaries)
            for e in epsilons
        ]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
