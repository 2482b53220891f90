"""Metrics to a JSON-lines file and TensorBoard; a resumed run rewinds both to its step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dae.train.run_folder import RunFolder


class MetricsLogger:
    """Appends `{"step": t, ...}` rows to `metrics.jsonl` and scalars to TensorBoard.

    Row `step` counts completed steps. On resume from a checkpoint after t steps, rows with step > t
    are dropped first, so the log of a killed and
    resumed run has each step once, like an uninterrupted run's.
    """

    def __init__(
        self, run_dir: Path | RunFolder | None, resume_step: int = 0, tensorboard: bool = True
    ):
        run = RunFolder(run_dir) if isinstance(run_dir, str | Path) else run_dir
        self.path = run.metrics_path if run else None
        self.rows: list[dict[str, Any]] = []
        self._tb = None
        if self.path is None:
            return
        if self.path.exists():
            kept = [
                line for line in self.path.read_text().splitlines() if _step_of(line) <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                str(run.tensorboard_dir), purge_step=resume_step + 1 if resume_step else None
            )

    def log(self, step: int, values: dict[str, Any]) -> None:
        row = {"step": step, **values}
        self.rows.append(row)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf  # a torn last line from a kill: drop it


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of a run's `metrics.jsonl`."""
    path = RunFolder(run_dir).metrics_path
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
