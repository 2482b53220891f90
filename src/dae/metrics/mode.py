"""Which codebook mode a VQ run is in, read off its training log.

docs/results.md found two modes of the CIFAR-10 VQ models: runs that reach the better one show a
three- to four-fold rise of the commitment loss (the mean squared distance of the encoder's
outputs from their codes) while their test L1 drops. `jump_step` names when that rise happens,
by a rule rather than a fit; `dae report` and `scripts/plot_mode.py` both use it. What the jump
is, on those runs: a third direction of the latent's channel space coming into use
(`test_latent_dims`, logged with the held-out rows, goes from 2 to 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

WINDOW = 8  # log rows averaged: one batch's commitment loss is noisy
FACTOR = 2.5  # the rise that counts as the jump; the runs of docs/results.md rose 3-4x


def commitment_series(
    rows: list[dict[str, Any]], start: int = 0, window: int = WINDOW
) -> tuple[list[int], list[float]]:
    """Steps and the commitment loss averaged over the last `window` log rows (trailing mean),
    from `start` on. Stage 2 freezes the encoder and codebook, so its rows (if logged) say nothing
    about the latent and are left out. ValueError for a run without a commitment term."""
    if not any("commitment" in r for r in rows):
        raise ValueError("no `commitment` column in its metrics: not a VQ run")
    if not any(r.get("commitment") for r in rows):
        # fsq logs the column but has no commitment term: a zero minimum would make any value a jump
        raise ValueError("its commitment loss is zero throughout (fsq has none): no mode to show")
    logged = [
        (r["step"], r["commitment"])
        for r in rows
        if "commitment" in r and r.get("stage") != "stage2"
    ]
    values = np.array([c for _, c in logged], dtype=float)
    means = [float(values[max(0, i + 1 - window) : i + 1].mean()) for i in range(len(values))]
    kept = [(s, m) for (s, _), m in zip(logged, means, strict=True) if s >= start]
    return [s for s, _ in kept], [m for _, m in kept]


def mode_series(
    rows: list[dict[str, Any]], start: int = 0, window: int = WINDOW
) -> dict[str, list]:
    """The test-L1 curve and the averaged commitment loss (`commitment_series`), from `start` on."""
    commit_steps, commitment = commitment_series(rows, start, window)
    test = [(r["step"], r["test_rec"]) for r in rows if "test_rec" in r and r["step"] >= start]
    if not test:
        raise ValueError(f"no held-out test L1 from step {start} on (train with log.test_every)")
    return {
        "test_steps": [s for s, _ in test],
        "test_l1": [v for _, v in test],
        "commit_steps": commit_steps,
        "commitment": commitment,
    }


def jump_step(steps: list[int], values: list[float], factor: float = FACTOR) -> int | None:
    """First step from which the values stay at least `factor` times the lowest value before it,
    or None. The loss falls from its initial value to a plateau first, so the running minimum
    follows it down; a rise that falls back (the codebook settling early on) is not the jump."""
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    if len(steps) != len(values):
        raise ValueError(f"{len(steps)} steps but {len(values)} values")
    lowest = float("inf")
    for i, value in enumerate(values):
        if value >= factor * lowest and min(values[i:]) >= factor * lowest:
            return steps[i]
        lowest = min(lowest, value)
    return None


def run_mode(
    rows: list[dict[str, Any]], window: int = WINDOW, factor: float = FACTOR
) -> dict[str, Any] | None:
    """A VQ run's jump step (None: no jump so far), the lowest averaged commitment loss before it
    (or overall) and the last one; None for a run without a commitment term (KL, FSQ, toy)."""
    try:
        steps, values = commitment_series(rows, 0, window)
    except ValueError:
        return None
    if not steps:
        return None
    jump = jump_step(steps, values, factor)
    before = values[: steps.index(jump)] if jump is not None else values
    dims = [(r["step"], r["test_latent_dims"]) for r in rows if "test_latent_dims" in r]
    codes = [r for r in rows if "test_codebook_used" in r]
    return {
        "jump_step": jump,
        "lowest": min(before),
        "last": values[-1],
        "last_step": steps[-1],
        "latent_dims": dims[-1][1] if dims else None,  # the last held-out row's, where logged
        "latent_dims_since": settled_since(dims),
        # the codes the last held-out row's images use, and their perplexity, where logged
        "codes_used": codes[-1]["test_codebook_used"] if codes else None,
        "code_perplexity": codes[-1]["test_codebook_perplexity"] if codes else None,
    }


def settled_since(series: list[tuple[int, Any]]) -> int | None:
    """The first step of a (step, value) series from which the value stays at its last one; None
    for an empty series. Applied to `test_latent_dims` it says when a run's latent took the
    directions it ends with (the third direction of docs/results.md's better mode)."""
    if not series:
        return None
    since = series[-1][0]
    for step, value in reversed(series):
        if value != series[-1][1]:
            break
        since = step
    return since
