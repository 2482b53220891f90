"""Metrics to a JSON-lines file and TensorBoard; a resumed run rewinds both to its step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dae.files import atomic_write
from dae.run_folder import RunFolder


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
            # atomic: a kill here must not cost the run its history
            atomic_write(self.path, lambda tmp: tmp.write_text("".join(f"{k}\n" for k in kept)))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            if resume_step and run.tensorboard_dir.is_dir():
                rewind_tensorboard(run.tensorboard_dir, resume_step)

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


def rewind_tensorboard(folder: Path, step: int) -> None:
    """Drop events after `step` from the event files in `folder`: TensorBoard's own purge (the
    writer's `purge_step`) hides them in its UI, but other readers (pandas exports, tbparse)
    would see the steps a killed run logged after its checkpoint twice."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.summary.writer.record_writer import RecordWriter

    for path in sorted(folder.glob("events.out.tfevents.*")):
        events = list(LegacyEventFileLoader(str(path)).Load())
        kept = [e for e in events if e.step <= step or e.HasField("file_version")]
        if len(kept) == len(events):
            continue

        def write(tmp: Path, kept=kept) -> None:
            with open(tmp, "wb") as f:
                writer = RecordWriter(f)
                for event in kept:
                    writer.write(event.SerializeToString())
                writer.flush()

        atomic_write(path, write)


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf  # a torn last line from a kill: drop it
