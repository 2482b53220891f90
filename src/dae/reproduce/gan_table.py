"""Runs the GAN table (paper Table 2, right): four models at equal step budgets, scored, written out.

Scores come from a pluggable `Scorer`, `uint8 images (N, 3, 32, 32) -> {metric name: value}`, so the
table never depends on which feature network exists: `classifier_scorer` measures FD / IS in the
features of dae's CIFAR-10 classifier (named "FD-classifier:cifar10", never FID) and adds true
FID / IS when an Inception weights file is given. The generated images are saved, so a table whose
scores were pending can be scored later (`dae reproduce gan --rescore DIR`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dae.config import replace, to_dict
from dae.data.transforms import save_grid
from dae.errors import MissingFileError
from dae.files import atomic_write, load_torch_file, read_json
from dae.progress import progress_bar
from dae.reproduce.gan import GANExperimentConfig, GANTask, generate, random_subset, train_simclr
from dae.schedule import DAESchedule
from dae.train.trainer import Trainer

Scorer = Callable[[torch.Tensor], dict[str, float]]


@dataclass(frozen=True)
class Row:
    """One table row: config overrides, what is scored, and the paper's IS / FID."""

    name: str
    overrides: tuple[str, ...]
    scored_on: str  # "samples" | "reconstructions"
    paper_is: float | None
    paper_fid: float | None


ROWS = (
    Row("DCGAN", ("variant=dcgan",), "samples", 5.68, 51.76),
    Row("DCGAN-SimCLR", ("variant=dcgan-simclr",), "reconstructions", 3.93, 168.23),
    Row("VAEGAN", ("variant=vaegan", "schedule.mode=baseline"), "reconstructions", 5.82, 48.11),
    Row(
        "DAE-VAEGAN",
        (
            "variant=vaegan",
            "schedule.mode=dae",
            "schedule.weak_decoder=aux",
            "schedule.aux_width=0.5",
        ),
        "reconstructions",
        6.16,
        46.12,
    ),
    # Not in the paper: the other weak decoder of the method. The full generator trains through both
    # stages (channel dropout in stage 1), so it gets as many steps as the joint VAEGAN's.
    Row(
        "DAE-VAEGAN-dropout",
        (
            "variant=vaegan",
            "schedule.mode=dae",
            "schedule.weak_decoder=dropout2d",
            "schedule.stage2.decoder_init=continue",
        ),
        "reconstructions",
        None,
        None,
    ),
)
REAL = "real train images"  # a disjoint real set: the FD floor and IS ceiling at this set size

# `--quick`: small nets and short runs that finish in ~25 minutes on a busy, shared 2-core CPU.
QUICK = (
    "model.gen_width=8",
    "model.disc_width=16",
    "model.enc_width=8",
    "simclr.model.width=8",
    "train.steps=1000",
    "train.batch_size=32",
    "simclr.steps=200",
    "simclr.batch_size=128",
)


def classifier_scorer(
    reference: torch.Tensor,
    root: str | None = None,
    inception: str | None = None,
    train_if_missing: bool = False,
    classifier_cfg: Any = None,
) -> Scorer:
    """FD / IS in dae's CIFAR-10 classifier features against `reference` (uint8), plus Inception
    FID / IS if `inception` names a weights file. `classifier_cfg` (a `ClassifierConfig`) replaces
    the standard preset. Raises ImportError/FileNotFoundError if the metrics are not available, so
    the caller can report the scores as pending."""
    from dae.metrics.features import build_features, reference_features
    from dae.metrics.fid import frechet_distance, inception_score

    extractors = [
        build_features(
            "classifier:cifar10", root=root, train_if_missing=train_if_missing, cfg=classifier_cfg
        )
    ]
    if inception:
        extractors.append(build_features(f"inception:{inception}"))
    refs = [reference_features(e, reference, "cifar10-test") for e in extractors]

    def score(images: torch.Tensor) -> dict[str, float]:
        out: dict[str, float] = {}
        for extractor, ref in zip(extractors, refs):
            feats = extractor.extract(images)
            out[extractor.names["fd"]] = frechet_distance(ref["pool"], feats["pool"])
            if "logits" in feats:
                out[extractor.names["is"]] = inception_score(feats["logits"])[0]
        return out

    return score


def _train_row(
    base: GANExperimentConfig, row: Row, images: torch.Tensor, backbone
) -> tuple[GANTask, list]:
    cfg = replace(base, list(row.overrides))
    task = GANTask(cfg, images, backbone)
    rows = Trainer(task, DAESchedule(cfg.schedule, cfg.train.steps), cfg.train, cfg.optim).fit()
    return task, rows


def run_table(
    base: GANExperimentConfig,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    n_eval: int,
    scorer: Scorer | None,
    out: Path | None,
    progress: bool = True,
    rows: tuple[Row, ...] = ROWS,
) -> dict[str, Any]:
    """Train SimCLR once, then every row for `base.train.steps` steps; generate, score, write.

    `n_eval` random test images (a fixed seeded subset, the same for every row and `rescore`) are
    the reference set and, for autoencoders, the images reconstructed.
    """
    base = replace(base, ["train.progress=false", "train.tensorboard=false"])
    start = time.time()
    backbone, simclr_history = None, []
    if any("variant=dcgan-simclr" in row.overrides for row in rows):
        simclr, simclr_history = train_simclr(base.simclr, train_images, base.train.seed)
        backbone = simclr.backbone
    simclr_seconds = time.time() - start
    test_images = random_subset(test_images, n_eval)
    meta = {
        "experiment": "CIFAR-10 GANs with learned latents (paper Sec. 6.2, Table 2 right)",
        "budget": {
            "steps": base.train.steps,
            "batch_size": base.train.batch_size,
            "simclr_steps": base.simclr.steps,
            "n_train": len(train_images),
            "n_eval": n_eval,
        },
        "simclr_seconds": round(simclr_seconds, 1),
        "simclr_final_loss": simclr_history[-1]["simclr"] if simclr_history else None,
        "config": to_dict(base),
    }
    results, outputs = [], {}

    def summary(scores: dict) -> dict[str, Any]:
        return {**meta, "rows": results, "scores": scores, "seconds": round(time.time() - start, 1)}

    for row in progress_bar(rows, desc="gan table", unit="model", disable=not progress):
        t0 = time.time()
        task, history = _train_row(base, row, train_images, backbone)
        outputs[row.name] = generate(task.model, test_images, n_eval, seed=base.train.seed)
        results.append(
            {
                "name": row.name,
                "scored_on": row.scored_on,
                "overrides": list(row.overrides),
                "seconds": round(time.time() - t0, 1),
                "final_losses": history[-1] if history else {},
                "paper": {"IS": row.paper_is, "FID": row.paper_fid},
            }
        )
        if out is not None:
            _save_outputs(out, row, outputs[row.name], test_images)
            # A partial summary after each model: a run cut short still leaves its numbers.
            write_summary(out, summary({"pending": "run in progress"}))
    final = summary(score_all(outputs, scorer, random_subset(train_images, n_eval, seed=1)))
    if out is not None:
        write_summary(out, final)
    return final


def score_all(outputs: dict[str, torch.Tensor], scorer: Scorer | None, real: torch.Tensor) -> dict:
    """Scores per row, plus those of `real` images not in the reference set; `pending` if no scorer."""
    if scorer is None:
        return {
            "pending": "no feature network available; rerun with --rescore once dae.metrics exists"
        }
    scores = {name: scorer(images) for name, images in outputs.items()}
    scores[REAL] = scorer(real)
    return scores


def _save_outputs(out: Path, row: Row, images: torch.Tensor, originals: torch.Tensor) -> None:
    """The scored images (for `--rescore`) and a grid: samples, or originals above reconstructions."""
    slug = row.name.lower()
    (out / "outputs").mkdir(parents=True, exist_ok=True)
    atomic_write(out / "outputs" / f"{slug}.pt", lambda p: torch.save(images.clone(), p))
    shown = images[:64] if row.scored_on == "samples" else interleave(originals[:32], images[:32])
    save_grid(out / f"grid_{slug}.png", shown, nrow=8, pad=2)


def interleave(top: torch.Tensor, bottom: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """Rows of `top` alternating with the matching rows of `bottom` (original / reconstruction)."""
    pairs = [t for i in range(0, len(top), nrow) for t in (top[i : i + nrow], bottom[i : i + nrow])]
    return torch.cat(pairs)


def read_summary(out: Path) -> dict[str, Any]:
    """The `results.json` a previous run wrote to `out` (what `--rescore` starts from)."""
    summary = read_json(out / "results.json", "run the table again without --rescore")
    if summary is None:
        raise MissingFileError(f"--rescore: no results.json in {out}; run the table first")
    return summary


def rescore(out: Path, scorer: Scorer, train_images: torch.Tensor) -> dict[str, Any]:
    """Score the images a previous run saved under `out/outputs/` and rewrite its summary."""
    summary = read_summary(out)
    outputs = {}
    for row in summary["rows"]:
        path = out / "outputs" / f"{row['name'].lower()}.pt"
        if not path.is_file():
            raise MissingFileError(f"--rescore: {path} is missing; train the row again")
        outputs[row["name"]] = load_torch_file(path)
    real = random_subset(train_images, summary["budget"]["n_eval"], seed=1)
    summary["scores"] = score_all(outputs, scorer, real)
    write_summary(out, summary)
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    """Ours beside the paper's; metric columns are whatever the scorer produced, by their names."""
    scores = summary["scores"]
    names = [] if "pending" in scores else list(next(iter(scores.values())).keys())
    b = summary["budget"]
    head = f"| model | scored on | {' | '.join(names) or 'scores'} | paper IS | paper FID |"
    lines = [
        f"Budget: {b['steps']} steps x batch {b['batch_size']} per model, SimCLR {b['simclr_steps']} "
        f"steps, {b['n_train']} training images, {b['n_eval']} scored images; {summary['seconds']} s.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in summary["rows"]:
        vals = ["pending"] if not names else [f"{scores[r['name']][k]:.2f}" for k in names]
        lines.append(
            f"| {r['name']} | {r['scored_on']} | {' | '.join(vals)} "
            f"| {_num(r['paper']['IS'])} | {_num(r['paper']['FID'])} |"
        )
    if names:
        vals = [f"{scores[REAL][k]:.2f}" for k in names]
        lines.append(f"| {REAL} | - | {' | '.join(vals)} | - | - |")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    atomic_write(out / "results.md", lambda p: p.write_text(markdown_table(summary)))
