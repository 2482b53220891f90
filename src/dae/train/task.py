"""What a model family hands the one trainer: the loop's settings (`TrainConfig`) and its own part
(`Task`: the modules, optimiser groups, the batch of a step and its losses, told where it is by
`StepContext`). dae/train/trainer.py runs any `Task` under any stage plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from dae.config import check
from dae.schedule import StagePlan


@dataclass
class TrainConfig:
    steps: int = field(default=1000, metadata={"help": "total optimisation steps (both stages)"})
    batch_size: int = field(default=128, metadata={"help": "batch size per process"})
    seed: int = field(
        default=0, metadata={"help": "seed for init, sampling and (data_seed null) batches"}
    )
    data_seed: int | None = field(
        default=None,
        metadata={
            "help": "seed for the batch order and flips alone; null: `seed`. Another data_seed "
            "at one seed varies the data order at a fixed init"
        },
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    log_every: int = field(default=50, metadata={"help": "steps between log rows"})
    ckpt_every: int = field(
        default=500, metadata={"help": "steps between checkpoints; 0: end only"}
    )
    ema_decay: float = field(default=0.0, metadata={"help": "EMA of weights; 0 disables"})
    ema_warmup: bool = field(
        default=True,
        metadata={
            "help": "EMA decay min(ema_decay, (1+n)/(10+n)) at step n of the stage, as "
            "latent-diffusion's LitEma, so a short run's average is not mostly the random init; "
            "false: the fixed decay from step 0 (DiT's update_ema)"
        },
    )
    on_nan: Literal["stop", "skip"] = field(
        default="stop", metadata={"help": "non-finite loss: stop (keep last checkpoint) or skip"}
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1, ..."})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard scalars"})
    channels_last: bool = field(
        default=False,
        metadata={"help": "image models and batches in channels_last (faster bf16 convs on GPUs)"},
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={
            "help": "autocast dtype: auto (bf16 on CUDA with bf16 and CPUs with AVX512-BF16/AMX, "
            "else fp32), fp32, bf16, fp16 (CUDA only)"
        },
    )

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.grad_accum >= 1, "grad_accum", f"must be >= 1, got {self.grad_accum}")
        check(
            self.grad_accum <= self.batch_size,
            "grad_accum",
            f"must be <= batch_size ({self.batch_size}): each micro-batch needs a sample, "
            f"got {self.grad_accum}",
        )
        check(
            self.data_seed is None or self.data_seed >= 0,
            "data_seed",
            f"must be >= 0 or null, got {self.data_seed}",
        )
        check(self.log_every >= 1, "log_every", f"must be >= 1, got {self.log_every}")
        check(self.ckpt_every >= 0, "ckpt_every", f"must be >= 0, got {self.ckpt_every}")
        check(0 <= self.ema_decay < 1, "ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        check(
            self.precision != "fp16" or self.device.startswith("cuda"),
            "precision",
            "fp16 needs a CUDA device (on CPU it runs ~1000x slower than fp32); use bf16",
        )

    @property
    def batch_seed(self) -> int:
        """The seed of the batch order and flips."""
        return self.seed if self.data_seed is None else self.data_seed


@dataclass
class StepContext:
    """What a task may know about where it is: the plan, the step *within* the stage, and the
    micro-batch. `outputs` lives for one step: e.g. the GAN step's fakes, made once by the
    autoencoder's forward and handed to the discriminator's loss."""

    plan: StagePlan
    stage_step: int
    micro: int = 0
    outputs: dict[Any, Any] = field(default_factory=dict)


class Task:
    """A model family's part in training. Subclasses set `self.model` and implement `batch`/`loss`."""

    model: nn.Module

    def modules(self) -> dict[str, nn.Module]:
        """Everything that is checkpointed, by name (add e.g. a discriminator)."""
        return {"model": self.model}

    def optimizer_params(self, plan: StagePlan) -> dict[str, list[nn.Parameter] | list[dict]]:
        """Optimiser name -> its parameters (or param groups), stepped in this order each step."""
        return {"ae": plan.parameters()}

    def start_stage(self, plan: StagePlan) -> None:
        """Hook at a fresh stage start (e.g. re-initialise the discriminator)."""

    def enter_stage(self, plan: StagePlan) -> None:
        """Hook after every stage application, fresh or resumed (e.g. DDP-wrap what now trains)."""

    def ddp_modules(self) -> list[nn.Module]:
        """The DDP wrappers a step runs through: all but the last micro-batch skip their all-reduce."""
        return []

    def hooks(self) -> list[Any]:
        """Callbacks `hook(trainer, logs)` run after every step (e.g. reconstruction grids)."""
        return []

    def finish(self) -> None:
        """Hook after the last step (e.g. measure a latent scaling factor)."""

    def batch(self, step: int) -> Any:
        """The batch of `step` (a pure function of the step, for exact resume)."""
        raise NotImplementedError

    def loss(
        self, name: str, batch: Any, ctx: StepContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for optimiser `name` on `batch`, and scalars to log; a None loss skips this
        optimiser for the step (e.g. a discriminator before its start)."""
        raise NotImplementedError
