"""Has a run converged? Read off its held-out test curve (`log.test_every` rows of metrics.jsonl).

The criterion is issue 13's: the last 20 % of the steps improve test L1 by less than 2 %. It is
read two ways, because one 1,000-image measurement moves by a few percent from one row to the next
and a cosine schedule makes its largest gains before the end: `flatness` compares two windows of
rows, `point_flatness` the few rows nearest 80 % of the run with the last few.
`scripts/study_report.py` tables all three readings; `dae sweep` reports `final_stage_flatness`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

CONVERGED = 0.02  # a relative test-L1 gain below this over the last 20 % counts as flat


class HeldOutCurve(NamedTuple):
    steps: list[int]
    l1: list[float]
    psnr: list[float]
    stages: list[str]
    dims: list[tuple[int, int]]  # (step, test_latent_dims) where logged


def held_out_curve(rows: list[dict[str, Any]]) -> HeldOutCurve:
    """The rows that carry a held-out measurement (`test_rec`), in log order."""
    curve = HeldOutCurve([], [], [], [], [])
    for row in rows:
        if "test_rec" in row:
            curve.steps.append(row["step"])
            curve.l1.append(row["test_rec"])
            curve.psnr.append(row["test_psnr"])
            curve.stages.append(row["stage"])
            if "test_latent_dims" in row:
                curve.dims.append((row["step"], row["test_latent_dims"]))
    return curve


def flatness(steps: list[int], l1: list[float], start: int = 0) -> float:
    """Relative test-L1 improvement of the last 20 % of the steps after `start`: mean test L1 over
    steps in (60 %, 80 %] of that span against the mean over (80 %, 100 %]. NaN when either window
    holds no row."""
    if not steps:
        return math.nan
    end = steps[-1]
    lo, mid = start + 0.6 * (end - start), start + 0.8 * (end - start)
    before = [v for s, v in zip(steps, l1) if lo < s <= mid]
    last = [v for s, v in zip(steps, l1) if s > mid]
    if not before or not last:  # too few test points to tell
        return math.nan
    return float((np.mean(before) - np.mean(last)) / np.mean(before))


def point_flatness(steps: list[int], l1: list[float], k: int = 3) -> float:
    """The criterion read point to point: relative test-L1 improvement from the `k` test points
    nearest 80 % of the run to its last `k`. Unlike `flatness`, a drop that happens before 80 %
    (as the cosine schedule anneals the lr) does not count against the last 20 %."""
    if len(steps) < 2 * k:
        return math.nan
    mark = 0.8 * steps[-1]
    near = sorted(range(len(steps)), key=lambda i: (abs(steps[i] - mark), steps[i]))[:k]
    at_mark = np.mean([l1[i] for i in near])
    return float((at_mark - np.mean(l1[-k:])) / at_mark)


def final_stage_flatness(steps: list[int], l1: list[float], stages: list[str]) -> float:
    """`flatness` over the final stage alone. A DAE stage-2 decoder trained from scratch starts
    late, so the whole run's last 20 % holds much of its training; this asks whether that decoder
    has converged. Equal to `flatness` for a one-stage (joint) run."""
    if not steps:
        return math.nan
    start = max((s for s, g in zip(steps, stages) if g != stages[-1]), default=0)
    return flatness(steps, l1, start)


def convergence(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A run's last held-out row and the three readings of the criterion; None for a run that
    logged no held-out row. `flat` judges the final stage (`final_stage_flatness`), None when it
    holds too few rows to tell."""
    curve = held_out_curve(rows)
    if not curve.steps:
        return None
    stage = final_stage_flatness(curve.steps, curve.l1, curve.stages)
    return {
        "step": curve.steps[-1],
        "stage": curve.stages[-1],
        "test_l1": curve.l1[-1],
        "test_psnr": curve.psnr[-1],
        "rows": len(curve.steps),
        "flatness": flatness(curve.steps, curve.l1),
        "stage_flatness": stage,
        "point_flatness": point_flatness(curve.steps, curve.l1),
        "flat": None if math.isnan(stage) else bool(stage < CONVERGED),
    }
