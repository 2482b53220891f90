"""`dae train` and `dae train-prior`: a run folder, the one `Trainer`, the final weights."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dae.config import to_dict
from dae.errors import ConfigError
from dae.experiments import get_kind
from dae.provenance import pin_paths
from dae.run_folder import RunFolder
from dae.runsafety import claim_run_dir
from dae.schedule import DAESchedule
from dae.train.distributed import barrier, init_distributed, shutdown
from dae.train.task import Task
from dae.train.trainer import Trainer


def train(
    cfg: Any,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    make_task: Callable[[RunFolder], Task] | None = None,
    hooks: Callable[[Task], list[Any]] | None = None,
    inputs: Sequence[str | Path] = (),
    until: int | None = None,
) -> Trainer:
    """Train `cfg` into the run folder `out`; `make_task(run)` overrides `KINDS[kind].task(cfg)`.

    Under `torchrun` every process runs this; rank 0 alone writes the run folder, holding its lock
    throughout (`inputs`: the command's input runs, which `out` must not be or contain). After
    training, values the task measured (a KL-AE's `scaling_factor`) are in `cfg`, and
    `config.yaml` and the weights' header are written from it, so both hold the same config.
    `until`: stop after that step with a checkpoint and no final weights; `resume` continues (a
    run already at that step keeps its checkpoint, and its log is cut back to it).
    """
    if until is not None and until < 1:  # before the run folder is claimed: nothing to undo
        raise ConfigError("--until", f"must be >= 1, got {until}")
    kind = get_kind(cfg.kind)
    run = RunFolder(out)
    pin_paths(cfg)  # an absolute data.root: evaluate/cache read the same data from anywhere
    info = init_distributed(cfg.train.device)
    lock, finished = None, False
    try:
        if info.is_main:
            lock = claim_run_dir(out, resume=resume, overwrite=overwrite, inputs=inputs)
            run.write_config(to_dict(cfg), resume=resume)
        barrier()
        task = make_task(run) if make_task else kind.task(cfg)
        schedule = (
            DAESchedule(cfg.schedule, cfg.train.steps) if kind.family == "autoencoder" else None
        )
        trainer = Trainer(
            task,
            schedule,
            cfg.train,
            cfg.optim,
            run_dir=out,
            config=to_dict(cfg),
            resume=resume,
            hooks=hooks(task) if hooks else None,
        )
        if until is not None and until < trainer.step:
            where = f"where {out} is" + (" (finished)" if trainer.finished else "")
            raise ConfigError("--until", f"must not be before step {trainer.step}, {where}")
        if resume and info.is_main:
            print(f"resuming {out} from step {trainer.step} of {cfg.train.steps}")
        trainer.fit(until)
        if not trainer.finished:
            finished = True  # a clean stop: the checkpoint is the run's state
            return trainer
        task.finish()
        config = to_dict(cfg)
        if info.is_main:
            run.write_config(config)
        trainer.export(config)
        if info.is_main and trainer.skipped_steps:
            print(
                f"warning: {trainer.skipped_steps} of {cfg.train.steps} steps were skipped for a "
                "non-finite loss (train.on_nan=skip); their updates are missing from these weights",
                file=sys.stderr,
            )
        finished = True
    finally:
        if lock is not None:
            lock.release()
        # A failed rank must not wait at a barrier for peers that may never come: it leaves at
        # once, and torchrun stops the others.
        shutdown(wait=finished)
    return trainer
