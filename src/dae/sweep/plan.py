"""Which runs a sweep makes: the baseline and one DAE variant per weakness setting, per seed.

Budgets (`--protocol`):
  equal-total    every run trains S steps in all (the paper's protocol: DAE's stage 2 gets fewer
                 decoder steps than the baseline's joint training).
  equal-decoder  the baseline trains S steps; a DAE run's stage 2 trains S steps and its stage 1
                 comes on top, so every final decoder gets the same number of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dae.config import ConfigError, parse_override
from dae.experiments import load_experiment_config
from dae.schedule import DAESchedule

Protocol = Literal["equal-total", "equal-decoder"]
PROTOCOLS: tuple[Protocol, ...] = ("equal-total", "equal-decoder")

# A weakness key implies the weak decoder it acts on; other keys (stage1_fraction, ...) keep the
# preset's weak decoder.
WEAK_DECODER_OF = {"schedule.aux_width": "aux", "schedule.dropout_p": "dropout2d"}
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "schedule.aux_width": (0.25, 0.5, 0.75),
    "schedule.dropout_p": (0.25, 0.5, 0.75),
}
BASELINE = "baseline"


@dataclass(frozen=True)
class Variant:
    """A row of the sweep table: config overrides and the weakness setting it stands for."""

    name: str
    overrides: tuple[str, ...]
    weakness: str | None = None  # grid key; None for the baseline
    value: Any = None


@dataclass(frozen=True)
class SweepRun:
    """One training run: a variant at a seed, its folder and its complete `--set` overrides."""

    variant: Variant
    seed: int
    dir: Path
    overrides: tuple[str, ...]
    steps: int

    @property
    def label(self) -> str:
        return f"{self.variant.name}/seed{self.seed}"


def parse_grid(items: list[str]) -> dict[str, tuple[Any, ...]]:
    """`["schedule.aux_width=0.25,0.5"]` -> {"schedule.aux_width": (0.25, 0.5)}."""
    grid: dict[str, tuple[Any, ...]] = {}
    for item in items:
        path, raw = parse_override(item)
        key = ".".join(path)
        values = tuple(parse_override(f"{key}={v.strip()}")[1] for v in str(raw).split(","))
        if not values or any(v in ("", None) for v in values):
            raise ConfigError(key, f"--grid needs KEY=v1,v2,...; got {item!r}")
        if key in grid:
            raise ConfigError(key, "given twice in --grid")
        grid[key] = values
    return grid


def make_variants(
    grid: dict[str, tuple[Any, ...]], baseline_overrides: tuple[str, ...] = ()
) -> list[Variant]:
    """The baseline, then one DAE variant per (key, value) of the grid, in the grid's order."""
    variants = [Variant(BASELINE, ("schedule.mode=baseline", *baseline_overrides))]
    for key, values in grid.items():
        short = key.rsplit(".", 1)[-1]
        implied = WEAK_DECODER_OF.get(key)
        for value in values:
            overrides = ["schedule.mode=dae", f"{key}={value}"]
            if implied:
                overrides.insert(1, f"schedule.weak_decoder={implied}")
            variants.append(Variant(f"dae-{short}-{value}", tuple(overrides), key, value))
    return variants


def dae_total_steps(schedule_cfg: Any, stage2_steps: int) -> int:
    """Fewest total steps whose stage 2 (under the DAE schedule's rounding) has `stage2_steps`."""
    total = max(2, math.floor(stage2_steps / (1.0 - schedule_cfg.stage1_fraction)) - 2)
    while total - DAESchedule(schedule_cfg, total).boundary < stage2_steps:
        total += 1
    return total


def plan_runs(
    config: str | Path,
    out: Path,
    seeds: int,
    grid: dict[str, tuple[Any, ...]],
    protocol: Protocol = "equal-total",
    steps: int | None = None,
    overrides: tuple[str, ...] = (),
    baseline_overrides: tuple[str, ...] = (),
) -> list[SweepRun]:
    """Every run of the sweep, validated now (a bad grid key fails before anything trains).

    `overrides` apply to every run, `baseline_overrides` to the baseline only (e.g. a later
    `disc.start`, so that its GAN term starts where DAE's stage 2 does).
    """
    if seeds < 1:
        raise ConfigError("--seeds", f"must be >= 1, got {seeds}")
    if protocol not in PROTOCOLS:
        raise ConfigError("--protocol", f"must be one of {list(PROTOCOLS)}, got {protocol!r}")
    runs = []
    for variant in make_variants(grid, baseline_overrides):
        base = [*overrides, *variant.overrides]
        _, cfg = load_experiment_config(config, base)
        budget = steps if steps is not None else cfg.train.steps
        total = budget
        if protocol == "equal-decoder" and cfg.schedule.mode == "dae":
            total = dae_total_steps(cfg.schedule, budget)
        for seed in range(seeds):
            full = (*base, f"train.steps={total}", f"train.seed={seed}")
            load_experiment_config(config, list(full))  # validates the run's own config
            runs.append(SweepRun(variant, seed, out / variant.name / f"seed{seed}", full, total))
    return runs
