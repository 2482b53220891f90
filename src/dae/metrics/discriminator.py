"""Did a run's discriminator tell real from reconstructed images? Read off the training log,
stage by stage.

A GAN term works through a discriminator that separates real from reconstructed images without
winning outright. docs/results.md's GAN pilot found both extremes: DAE's stage-2 discriminator,
reset with 2,600 GAN steps left, stayed at chance (hinge `d_loss` ~1, real and fake logits equal)
and FD-classifier stayed where the no-GAN run's was; its stage-1 discriminator beat the half-width
decoder outright (`d_loss` 0, adaptive generator weight ~1e-4). At chance is a symptom, not proof
of a useless term: a GAN in balance sits there too, and with 13,400 GAN steps a stage-2
discriminator within 0.05 of chance still took FD-classifier from ~50 to 11 and 28. So a verdict
says what the discriminator did; FD-classifier with and without the GAN says what the term did.
Each log row holds one step's values, so a verdict averages the last `TAIL` of a stage's GAN rows.
A stage's `settled_from` is the step from which its discriminator stayed off chance (trailing means
over `SMOOTH` rows): a fresh one can sit at chance for thousands of GAN steps before it learns, and
a stage shorter than that gets little from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# d_loss of a discriminator whose logits are 0 for every image, per unit `disc.factor`
CHANCE = {"hinge": 1.0, "vanilla": math.log(2.0)}
TAIL = 0.5  # share of a stage's GAN rows averaged: its end, once the discriminator had time
NEAR_CHANCE = 0.95  # mean d_loss at least this share of chance ...
MIN_GAP = 0.1  # ... and mean logit(real) - logit(fake) below this: "at chance"
WON = 0.05  # mean d_loss below this share of chance: "won outright"
SMOOTH = 20  # GAN log rows per point of the plotted curves (1,000 steps at log_every 50)


def _gan_rows_by_stage(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    stages: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "d_loss" in row:
            stages.setdefault(str(row.get("stage", "joint")), []).append(row)
    return stages


def _trailing_means(gan: list[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    """One stage's `d_loss` and logit(real) - logit(fake) as trailing means over `window` rows."""
    out = []
    for i, row in enumerate(gan):
        last = gan[max(0, i + 1 - window) : i + 1]
        out.append(
            {
                "step": row["step"],
                "d_loss": float(np.mean([r["d_loss"] for r in last])),
                "logit real - fake": float(
                    np.mean([r["logits_real"] - r["logits_fake"] for r in last])
                ),
            }
        )
    return out


def smoothed_gan_rows(rows: list[dict[str, Any]], window: int = SMOOTH) -> list[dict[str, Any]]:
    """`d_loss` and logit(real) - logit(fake) as trailing means over `window` GAN log rows, within
    each stage (a stage's discriminator is not averaged with the one before it)."""
    out: list[dict[str, Any]] = []
    for gan in _gan_rows_by_stage(rows).values():
        if out:  # NaN breaks the drawn line between one stage's discriminator and the next
            out.append({"step": gan[0]["step"], "d_loss": math.nan, "logit real - fake": math.nan})
        out += _trailing_means(gan, window)
    return out


def _at_chance(d_loss: float, gap: float, chance: float) -> bool:
    return d_loss >= NEAR_CHANCE * chance and gap < MIN_GAP


def settled_from(gan: list[dict[str, Any]], chance: float, window: int = SMOOTH) -> int | None:
    """The first step of one stage's GAN rows from which every trailing mean (over `window` rows)
    is off chance; None if the last one is at chance. A fresh discriminator can win early and then
    fall to chance, so this is where it stayed off, not where it first left."""
    settled = None
    for point in _trailing_means(gan, window):
        if _at_chance(point["d_loss"], point["logit real - fake"], chance):
            settled = None
        elif settled is None:
            settled = point["step"]
    return settled


def discriminator_health(
    rows: list[dict[str, Any]], loss: str = "hinge", factor: float = 1.0
) -> list[dict[str, Any]]:
    """One verdict per stage that trained a discriminator (`d_loss` logged), in log order.

    Each: stage, first/last GAN step, rows (GAN log rows), tail_from (first step averaged),
    d_loss, chance, logit_gap (mean logit(real) - logit(fake)), d_weight (mean adaptive
    generator weight, None if not logged), settled_from (`settled_from`; None when the verdict is
    at chance) and verdict: "at chance", "won outright" or "learning".
    """
    if loss not in CHANCE:
        raise ValueError(f"unknown discriminator loss {loss!r} (known: {', '.join(CHANCE)})")
    stages = _gan_rows_by_stage(rows)
    chance = CHANCE[loss] * factor
    out = []
    for stage, gan in stages.items():
        tail = gan[len(gan) - max(1, math.ceil(TAIL * len(gan))) :]
        d_loss = float(np.mean([r["d_loss"] for r in tail]))
        gap = float(np.mean([r["logits_real"] - r["logits_fake"] for r in tail]))
        weights = [r["d_weight"] for r in tail if "d_weight" in r]
        if _at_chance(d_loss, gap, chance):
            verdict = "at chance"
        elif d_loss < WON * chance:
            verdict = "won outright"
        else:
            verdict = "learning"
        out.append(
            {
                "stage": stage,
                "first_step": gan[0]["step"],
                "last_step": gan[-1]["step"],
                "rows": len(gan),
                "tail_from": tail[0]["step"],
                "d_loss": d_loss,
                "chance": chance,
                "logit_gap": gap,
                "d_weight": float(np.mean(weights)) if weights else None,
                "settled_from": None if verdict == "at chance" else settled_from(gan, chance),
                "verdict": verdict,
            }
        )
    return out


# verdict -> (what the discriminator did, what it means); "learning" is not warned about
ADVICE = {
    "at chance": (
        "sat at chance",
        "it did not tell real from reconstructed batches apart, so its GAN term may have done "
        "little or harm (compare FD-classifier with a run without it)",
    ),
    "won outright": (
        "won outright",
        "the adaptive weight shrank the generator term to almost nothing",
    ),
}
# (verdict, stage) -> what to try, where it was measured to help (docs/results.md): a cap on the
# adaptive weight improved DAE's stage 2 on three seeds and did not help a joint model, so the
# hint is given for stage 2 only
HINTS = {
    ("at chance", "stage2"): (
        "the adaptive weight scales such a term up to the reconstruction term's size, and "
        "capping it (disc.max_weight=0.05, with disc.shared_batch=true) improved stage 2's "
        "FD-classifier on three CIFAR-10 seeds"
    ),
}


def warning_text(label: str, health: dict[str, Any]) -> str | None:
    """A one-line warning for a stage whose discriminator sat at chance or won outright (None if
    it was learning)."""
    if health["verdict"] not in ADVICE:
        return None
    did, advice = ADVICE[health["verdict"]]
    hint = HINTS.get((health["verdict"], health["stage"]))
    if hint:
        advice = f"{advice}; {hint}"
    return (
        f"{label}: the {health['stage']} discriminator {did} over steps "
        f"{health['tail_from']}-{health['last_step']} (d_loss {health['d_loss']:.3g}, chance "
        f"{health['chance']:.3g}; logit gap {health['logit_gap']:.3g}): {advice}"
    )
