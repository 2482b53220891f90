"""The one training loop: asks a stage plan for each step's stage, trains what the plan says.

The plan is `SingleStage` by default (priors, SimCLR) and `DAESchedule` for autoencoders. A family
(toy VAE, VQGAN, GAN, GPT/DiT prior, ...) plugs in as a `Task` (dae/train/task.py): its modules, its
optimiser groups, the batch of a step, and its losses. The loop owns seeding, optimisers,
precision, DDP (gradients of accumulated micro-batches are all-reduced once), EMA, logging, NaN
policy, progress and atomic checkpoints with exact resume (weights, optimisers, EMA, step, stage,
RNG; batches are a pure function of the step, see `EpochSampler`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from dae.errors import CheckpointError, NonFiniteLossError
from dae.files import load_checkpoint, save_checkpoint, save_state
from dae.progress import progress_bar
from dae.run_folder import RunFolder
from dae.runsafety import claim_run_dir
from dae.schedule import DAESchedule, SingleStage, Stage, StagePlan
from dae.train.checkpoint import host_rng_state, load_state, restore_host_rng_state, save_weights
from dae.train.distributed import (
    barrier,
    device_rng_state,
    dist_info,
    gather_objects,
    resolve_device,
    set_device_rng_state,
)
from dae.train.interrupt import StepBoundaryInterrupt
from dae.train.logger import MetricsLogger
from dae.train.optim import EMA, OptimConfig, build_optimizer, ema_note, lr_scale
from dae.train.precision import select_precision
from dae.train.task import StepContext, Task, TrainConfig

CHECKPOINT_VERSION = 1


def _split(batch: Any, parts: int) -> list[Any]:
    """Split a tensor, or a tuple/list of tensors, into `parts` micro-batches along dim 0."""
    if parts == 1:
        return [batch]
    if isinstance(batch, torch.Tensor):
        return list(batch.chunk(parts))
    chunks = [b.chunk(parts) if isinstance(b, torch.Tensor) else [b] * parts for b in batch]
    return [type(batch)(c[i] for c in chunks) for i in range(parts)]


def _batch_size(batch: Any) -> int:
    """Samples in a tensor batch, or in the first tensor of a tuple/list batch."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    return next(len(b) for b in batch if isinstance(b, torch.Tensor))


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """`claim_run_dir` without holding the lock (library use); `dae train` holds it for the run."""
    claim_run_dir(run_dir, resume=resume, overwrite=overwrite).release()


class Trainer:
    """Runs `task` for `cfg.steps` steps under a stage plan (`schedule`; None: one stage)."""

    def __init__(
        self,
        task: Task,
        schedule: DAESchedule | SingleStage | None,
        cfg: TrainConfig,
        optim: OptimConfig,
        run_dir: str | Path | None = None,
        config: dict[str, Any] | None = None,
        resume: bool = False,
        hooks: list[Any] | None = None,
    ):
        schedule = schedule or SingleStage(cfg.steps)
        if schedule.total_steps != cfg.steps:
            raise ValueError(f"schedule has {schedule.total_steps} steps, train.steps={cfg.steps}")
        self.task, self.schedule, self.cfg, self.optim_cfg = task, schedule, cfg, optim
        self.run_dir = Path(run_dir) if run_dir else None
        self.run = RunFolder(run_dir) if run_dir else None
        if self.run is not None:
            self.run.prepare_checkpoints()
        self.config = config or {}
        self.hooks = (hooks or []) + task.hooks()
        self.dist = dist_info()
        self.device = resolve_device(cfg.device)
        main = self.dist.is_main
        self.precision = select_precision(
            cfg.precision, self.device, self.run if main else None, log=main
        )
        # fp16 needs loss scaling against gradient underflow; bf16 has fp32's exponent range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.name == "fp16")
        self.samples_per_s: float | None = None  # moving average, shown on the progress bar
        self.step = 0
        self.saved_step: int | None = None  # step of the checkpoint on disk, if any
        self.skipped_steps = 0  # steps whose update on_nan=skip dropped
        self.plan: StagePlan | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.opt_stage: Stage | None = None
        task.model.to(self.device)
        schedule.prepare(task.model)
        self.ema = EMA(task.model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay > 0 else None
        note = ema_note(cfg.ema_decay, cfg.steps, cfg.ema_warmup)
        if note and main:
            print(f"warning: {note}", file=sys.stderr)
        self._resume_payload = self._load_last() if resume else None

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        assert self.run is not None
        return self.run.checkpoint_path

    def state(self) -> dict[str, Any]:
        """The whole training state as plain data and tensors."""
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "stage": self.schedule.stage_at(min(self.step, self.cfg.steps - 1)),
            "opt_stage": self.opt_stage,
            "modules": {k: m.state_dict() for k, m in self.task.modules().items()},
            "ema": self.ema.shadow if self.ema else None,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": host_rng_state(),
            "rng_ranks": gather_objects(device_rng_state(self.device)),
            "scaler": self.scaler.state_dict(),
            "skipped_steps": self.skipped_steps,
            "config": self.config,
        }

    def save(self) -> None:
        """Rank 0 writes; all ranks take part in gathering the state and wait for the file."""
        if self.run is not None:
            state = self.state()
            if self.dist.is_main:
                save_checkpoint(self.ckpt_path, state)
            barrier()
            self.saved_step = self.step

    def export(self, config: dict[str, Any]) -> None:
        """Rank 0 writes the final weights (and the EMA's) with `config` in their header."""
        if self.run is not None and self.dist.is_main:
            save_weights(self.run.weights_path, self.task.model, config)
            if self.ema is not None:
                save_state(self.run.ema_weights_path, self.ema.shadow, config)
        barrier()

    def _load_last(self) -> dict[str, Any]:
        payload = load_checkpoint(self.ckpt_path)
        if payload.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{self.ckpt_path}: unknown checkpoint version {payload.get('version')}"
            )
        for name, module in self.task.modules().items():
            if name not in payload["modules"]:
                raise CheckpointError(f"{self.ckpt_path}: has no weights for {name!r}")
            load_state(module, payload["modules"][name], f"{name} in {self.ckpt_path}")
        if self.ema is not None and payload.get("ema") is not None:
            self.ema.shadow = payload["ema"]
        self.step = self.saved_step = int(payload["step"])
        self.skipped_steps = int(payload.get("skipped_steps", 0))
        restore_host_rng_state(payload["rng"])
        ranks = payload.get("rng_ranks") or []
        if len(ranks) == self.dist.world_size:
            set_device_rng_state(self.device, ranks[self.dist.rank])
        if payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        return payload

    # -- stages -----------------------------------------------------------------------------------
    def _enter(self, stage: Stage) -> None:
        """Apply the stage; fresh optimisers unless resuming inside the same stage."""
        resumed = self._resume_payload
        same_stage = resumed is not None and resumed.get("opt_stage") == stage
        fresh = not same_stage
        self.plan = self.schedule.enter(self.task.model, stage, fresh=fresh)
        if fresh:
            self.task.start_stage(self.plan)
        self.task.enter_stage(self.plan)
        groups = self.task.optimizer_params(self.plan)
        self.optimizers = {name: build_optimizer(self.optim_cfg, ps) for name, ps in groups.items()}
        if same_stage:
            for name, opt in self.optimizers.items():
                opt.load_state_dict(resumed["optimizers"][name])
        self.opt_stage = stage
        self._resume_payload = None

    def _nan_message(self, name: str, step: int, stage: Stage) -> str:
        # 1-based, like the log's `step` (steps completed once this one is).
        where = ""
        if self.run_dir is not None and self.saved_step is not None:
            where = (
                f"; the last good checkpoint (step {self.saved_step}) is kept at "
                f"{self.ckpt_path}, --resume continues from it"
            )
        elif self.run_dir is not None:
            where = "; no checkpoint was written yet, so there is nothing to resume"
        return f"non-finite {name!r} loss in step {step + 1} ({stage}); stopped{where}"

    # -- the loop ---------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.step >= self.cfg.steps

    def fit(self, until: int | None = None) -> list[dict[str, Any]]:
        """Train to `cfg.steps`, or stop after step `until` (with a checkpoint there, the
        schedule and lr decay still those of `cfg.steps`, so that `--resume` continues as if
        never stopped); returns the logged rows."""
        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        if until is not None and until < self.step:
            raise ValueError(
                f"asked to stop after step {until}, but the run is at step {self.step}"
            )
        main = self.dist.is_main
        start = self.step
        # Opened even when no step is left to take: it rewinds the rows and events a killed run
        # logged after its checkpoint, so the log ends where the run's state does.
        logger = MetricsLogger(self.run if main else None, self.step, tensorboard=cfg.tensorboard)
        bar = progress_bar(
            total=cfg.steps,
            initial=self.step,
            disable=not (cfg.progress and main),
            dynamic_ncols=True,
            desc="train",
            unit="step",
        )
        try:
            with StepBoundaryInterrupt() as interrupt:
                while self.step < stop:
                    self._train_step(logger, bar)
                    interrupt.stop_if_asked(self.save, self.step, self.run_dir)
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and self.step < stop:
                        self.save()
                if self.step > start:  # else the checkpoint it resumed from holds this state
                    self.save()
            if self.finished:
                self.schedule.finish(self.task.model)
        finally:
            bar.close()
            logger.close()
        return logger.rows

    def _train_step(self, logger: MetricsLogger, bar: Any) -> None:
        cfg, step = self.cfg, self.step
        stage = self.schedule.stage_at(step)
        if self.plan is None or self.plan.stage != stage:
            self._enter(stage)
            if self.run is not None and self.plan.start == step and step > 0:
                self.save()  # checkpoint the transition itself, so no resume repeats it
        plan = self.plan
        ctx = StepContext(plan, step - plan.start)
        wrappers = [m for m in self.task.ddp_modules() if isinstance(m, DDP)]
        plan.set_train_mode(self.task.model)
        scale = lr_scale(self.optim_cfg, ctx.stage_step, plan.end - plan.start)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = self.optim_cfg.lr * scale
        started = time.perf_counter()
        batch = self.task.batch(step)
        # A varying lr is logged, so a curve can be read against its schedule.
        varying = self.optim_cfg.decay != "none" or self.optim_cfg.warmup_steps > 0
        logs: dict[str, float] = {"lr": self.optim_cfg.lr * scale} if varying else {}
        autocast = self.precision.autocast()
        for name, opt in self.optimizers.items():
            opt.zero_grad(set_to_none=True)
            finite, active = True, True
            micros = _split(batch, cfg.grad_accum)
            sizes = [_batch_size(m) for m in micros]
            for ctx.micro, micro in enumerate(micros):
                # Weighted by size: uneven splits (10 into 4: 3, 3, 3, 1) average like one batch.
                weight = sizes[ctx.micro] / sum(sizes)
                # Gradients add up locally; only the last micro-batch's backward all-reduces
                # (`chunk` may give fewer micro-batches than grad_accum: 5 into 4 is 2, 2, 1).
                last = ctx.micro == len(micros) - 1
                with contextlib.ExitStack() as no_sync:
                    for wrapper in wrappers if not last else []:
                        no_sync.enter_context(wrapper.no_sync())
                    with autocast:
                        loss, parts = self.task.loss(name, micro, ctx)
                    if loss is not None and torch.isfinite(loss):
                        self.scaler.scale(loss * weight).backward()
                if loss is None:
                    active = False
                    break
                if not torch.isfinite(loss):
                    finite = False
                    break
                for key, value in parts.items():
                    logs[key] = logs.get(key, 0.0) + value * weight
            if not finite:
                if cfg.on_nan == "stop":
                    raise NonFiniteLossError(self._nan_message(name, step, plan.stage))
                opt.zero_grad(set_to_none=True)
                logs["skipped_nonfinite"] = 1.0
                continue
            if not active:
                opt.zero_grad(set_to_none=True)
                continue
            if self.optim_cfg.grad_clip > 0:
                self.scaler.unscale_(opt)
                params = [p for g in opt.param_groups for p in g["params"]]
                gn = nn.utils.clip_grad_norm_(params, self.optim_cfg.grad_clip)
                logs[f"grad_norm/{name}"] = float(gn)
            self.scaler.step(opt)
        self.scaler.update()
        self.skipped_steps += int("skipped_nonfinite" in logs)
        if self.ema is not None:
            # The warm-up counts from the stage's start: DAE's stage 2 trains the decoder anew,
            # and its average should follow that training, not the stage-1 weights.
            self.ema.update(self.task.model, ctx.stage_step)
        self.step += 1
        # Throughput goes to the progress bar, not the metrics: timings would make a resumed
        # run's log differ from an uninterrupted one's.
        rate = cfg.batch_size * self.dist.world_size / max(time.perf_counter() - started, 1e-9)
        self.samples_per_s = (
            rate if self.samples_per_s is None else 0.9 * self.samples_per_s + 0.1 * rate
        )
        bar.update(1)
        for hook in self.hooks:
            hook(self, logs)
        if self.step % cfg.log_every == 0 or self.step == cfg.steps:
            row = {"stage": plan.stage, **{k: v for k, v in logs.items() if math.isfinite(v)}}
            logger.log(self.step, row)
            shown = {k: f"{v:.3g}" for k, v in list(logs.items())[:3]}
            bar.set_postfix({**shown, "samples/s": f"{self.samples_per_s:.1f}"})
