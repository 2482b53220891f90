"""The DAE two-stage schedule, model-agnostic: which stage a step is in, what trains, what is frozen.

    baseline:  [ joint: encoder + bottleneck + decoder ............................ ]
    dae:       [ stage1: encoder + bottleneck + WEAK decoder | stage2: FULL decoder  ]
                                                             ^ encoder, bottleneck frozen
    stage2:    [ stage2: FULL decoder ........................................... ]
               ^ a pretrained encoder and bottleneck (`model.init_from`), frozen throughout

The weak decoder is either `aux` (a separately built decoder of the same family, `aux_width` times
the channels) or `dropout2d` (the real decoder with channel-wise dropout `dropout_p` in every
residual / hidden block). Both schedules spend the same total number of steps, so comparisons are
fair. The trainer asks this module for a `StagePlan`; losses never look at the step counter.

A stage plan is anything with `total_steps`, `stage_at(step)`, `prepare(model)`,
`enter(model, stage, fresh) -> StagePlan` and `finish(model)`: `SingleStage` (priors, SimCLR; the
trainer's default) and `DAESchedule` (autoencoders) are the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.config import ConfigError, check

Stage = Literal["train", "joint", "stage1", "stage2"]


@dataclass
class Stage2Config:
    decoder_init: Literal["scratch", "continue"] = field(
        default="scratch",
        metadata={"help": "stage-2 decoder: re-initialised, or continued from stage 1 (dropout2d)"},
    )
    reset_discriminator: bool = field(
        default=True, metadata={"help": "re-initialise the discriminator when stage 2 starts"}
    )


@dataclass
class ScheduleConfig:
    mode: Literal["baseline", "dae", "stage2"] = field(
        default="baseline",
        metadata={
            "help": "baseline: joint training; dae: two stages; stage2: DAE stage 2 alone, the "
            "decoder of a pretrained autoencoder (model.init_from) fine-tuned or retrained"
        },
    )
    weak_decoder: Literal["aux", "dropout2d"] = field(
        default="aux", metadata={"help": "how stage 1 weakens the decoder"}
    )
    aux_width: float = field(default=0.5, metadata={"help": "aux decoder width factor"})
    dropout_p: float = field(default=0.5, metadata={"help": "channel dropout in stage 1"})
    stage1_fraction: float = field(default=0.5, metadata={"help": "share of steps in stage 1"})
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def __post_init__(self) -> None:
        check(0.0 < self.aux_width <= 1.0, "aux_width", f"must be in (0, 1], got {self.aux_width}")
        check(0.0 <= self.dropout_p < 1.0, "dropout_p", f"must be in [0, 1), got {self.dropout_p}")
        check(
            0.0 < self.stage1_fraction < 1.0,
            "stage1_fraction",
            f"must be in (0, 1), got {self.stage1_fraction}",
        )


@dataclass
class StagePlan:
    """What one stage does: its step range, which modules train, which are frozen, which decode."""

    stage: Stage
    start: int
    end: int
    trainable: list[nn.Module]
    frozen: list[nn.Module]
    use_aux_decoder: bool
    dropout_p: float
    reset_discriminator: bool = False

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters, each once, in a stable order (the optimiser gets exactly these)."""
        seen: set[int] = set()
        params = []
        for module in self.trainable:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def set_train_mode(self, model: nn.Module) -> None:
        """`model.train()`, then frozen parts back to `.eval()` (no BN/EMA/codebook updates)."""
        model.train()
        for module in self.frozen:
            module.eval()


class SingleStage:
    """One stage, "train", over all steps: the whole model trains, nothing is frozen."""

    def __init__(self, total_steps: int):
        self.total_steps = total_steps

    def stage_at(self, step: int) -> Stage:
        return "train"

    def prepare(self, model: nn.Module) -> None:
        pass

    def enter(self, model: nn.Module, stage: Stage, fresh: bool = True) -> StagePlan:
        return StagePlan("train", 0, self.total_steps, [model], [], False, 0.0)

    def finish(self, model: nn.Module) -> None:
        pass


class DAESchedule:
    """Maps a step to its stage and applies that stage's freezing to a `DecoupledAutoencoder`."""

    def __init__(self, cfg: ScheduleConfig, total_steps: int):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.cfg = cfg
        self.total_steps = total_steps
        if cfg.mode == "dae":
            self.boundary = min(max(1, round(cfg.stage1_fraction * total_steps)), total_steps - 1)
            if total_steps < 2:
                raise ConfigError(
                    "train.steps", f"a DAE schedule needs >= 2 (one per stage), got {total_steps}"
                )
        elif cfg.mode == "stage2":
            self.boundary = 0  # every step is a stage-2 step
        else:
            self.boundary = total_steps

    def stage_at(self, step: int) -> Stage:
        """Stage of the (0-based) optimisation step `step`."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"step {step} outside [0, {self.total_steps})")
        if self.cfg.mode == "baseline":
            return "joint"
        return "stage1" if step < self.boundary else "stage2"

    def bounds(self, stage: Stage) -> tuple[int, int]:
        """[start, end) steps of `stage`."""
        return {"joint": (0, self.total_steps), "stage1": (0, self.boundary)}.get(
            stage, (self.boundary, self.total_steps)
        )

    def prepare(self, model: DecoupledAutoencoder) -> None:
        """Attach what the schedule needs before weights are loaded (the aux decoder)."""
        if self.cfg.mode == "dae" and self.cfg.weak_decoder == "aux" and model.aux_decoder is None:
            model.attach_aux_decoder(self.cfg.aux_width)

    def enter(self, model: DecoupledAutoencoder, stage: Stage, fresh: bool = True) -> StagePlan:
        """Apply `stage` to `model` and return its plan.

        `fresh` is True when training crosses into the stage (not when a run resumes inside it):
        only then is the stage-2 decoder re-initialised, since a resumed run loads its weights.
        """
        cfg = self.cfg
        enc, dec = model.encoder_modules(), model.decoder_modules()
        aux = [model.aux_decoder] if model.aux_decoder is not None else []
        dropout_p, use_aux, reset_disc = 0.0, False, False
        if stage == "joint":
            trainable, frozen = enc + dec, aux
        elif stage == "stage1":
            if cfg.weak_decoder == "aux":
                trainable, frozen, use_aux = enc + aux, dec, True
            else:
                trainable, frozen, dropout_p = enc + dec, aux, cfg.dropout_p
        else:
            trainable, frozen = dec, enc + aux
            reset_disc = fresh and cfg.stage2.reset_discriminator
            # With `aux` the full decoder is still at its initialisation, so both choices agree.
            if fresh and cfg.stage2.decoder_init == "scratch":
                model.reset_decoder()
        model.use_aux_decoder = use_aux
        model.set_decoder_dropout(dropout_p)
        for module in frozen:
            module.requires_grad_(False)
            module.eval()
        for module in trainable:
            module.requires_grad_(True)
        start, end = self.bounds(stage)
        return StagePlan(stage, start, end, trainable, frozen, use_aux, dropout_p, reset_disc)

    def finish(self, model: DecoupledAutoencoder) -> None:
        """After the last step: the trained model decodes with its full decoder, no dropout."""
        model.use_full_decoder()
