"""`dae train` and `dae train-prior`: a run folder, the one `Trainer`, the final weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dae.config import to_dict
from dae.experiments import get_kind
from dae.schedule import DAESchedule
from dae.train.distributed import barrier, init_distributed, shutdown
from dae.train.run_folder import RunFolder
from dae.train.trainer import Task, Trainer


def train(
    cfg: Any,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    make_task: Callable[[RunFolder], Task] | None = None,
    hooks: Callable[[Task], list[Any]] | None = None,
) -> Trainer:
    """Train `cfg` into the run folder `out`; `make_task(run)` overrides `KINDS[kind].task(cfg)`.

    Under `torchrun` every process runs this; rank 0 alone writes the run folder. After training,
    values the task measured (a KL-AE's `scaling_factor`) are in `cfg`, and `config.yaml` and the
    weights' header are written from it, so both hold the same config.
    """
    kind = get_kind(cfg.kind)
    run = RunFolder(out)
    info = init_distributed(cfg.train.device)
    try:
        if info.is_main:
            run.prepare(resume=resume, overwrite=overwrite)
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
        trainer.fit()
        task.finish()
        config = to_dict(cfg)
        if info.is_main:
            run.write_config(config)
        trainer.export(config)
    finally:
        shutdown()
    return trainer
