"""Optimiser config and construction, and the EMA of weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dae.config import check


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw", "sgd"] = field(default="adam", metadata={"help": "optimiser"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "Adam betas"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up, restarted per stage"})
    decay: Literal["none", "cosine"] = field(
        default="none",
        metadata={"help": "lr decay over each stage: none, or cosine down to final_lr_fraction"},
    )
    final_lr_fraction: float = field(
        default=0.1, metadata={"help": "cosine decay ends at lr * this, at the stage's last step"}
    )
    grad_clip: float = field(default=0.0, metadata={"help": "max grad norm; 0 disables"})

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(self.warmup_steps >= 0, "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        check(
            0 <= self.final_lr_fraction <= 1,
            "final_lr_fraction",
            f"must be in [0, 1], got {self.final_lr_fraction}",
        )
        check(self.grad_clip >= 0, "grad_clip", f"must be >= 0, got {self.grad_clip}")
        check(all(0 <= b < 1 for b in self.betas), "betas", f"must be in [0, 1), got {self.betas}")


def lr_scale(cfg: OptimConfig, stage_step: int, stage_steps: int) -> float:
    """The lr multiplier of the (0-based) step `stage_step` of a stage `stage_steps` long.

    Warm-up and decay restart with every stage: DAE's stage 2 trains a fresh decoder, which needs
    the same schedule a baseline decoder gets, so that a comparison does not favour either arm.
    """
    scale = min(1.0, (stage_step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.decay == "cosine" and stage_steps > 1:
        # Warm-up first, then a half cosine from 1 at its end to final_lr_fraction at the last step.
        span = max(1, stage_steps - 1 - cfg.warmup_steps)
        t = min(1.0, max(0, stage_step - cfg.warmup_steps) / span)
        floor = cfg.final_lr_fraction
        scale *= floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return scale


def build_optimizer(
    cfg: OptimConfig, params: list[nn.Parameter] | list[dict]
) -> torch.optim.Optimizer:
    """An optimiser over exactly `params` (the stage's trainable parameters, or param groups)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.betas[0], weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    # The fused kernel is several times faster than the default per-tensor loop on CPU, too.
    tensors = (
        [p for g in params for p in g["params"]]
        if params and isinstance(params[0], dict)
        else params
    )
    fused = bool(tensors) and all(p.device.type in ("cpu", "cuda") for p in tensors)
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)


def ema_decay_at(decay: float, step: int, warmup: bool) -> float:
    """The EMA decay of the update after `step` (0-based) optimiser steps. The warm-up
    (1 + n) / (10 + n) is latent-diffusion's LitEma: 0.1 at the first update, 0.9 at step 80,
    0.999 from step 8,990, so the average follows training from the start instead of holding on
    to the random init."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def ema_init_share(decay: float, steps: int, warmup: bool = False) -> float:
    """The share of the initial weights still in an EMA after `steps` updates: the product of
    the decays (decay ** steps without the warm-up)."""
    if decay <= 0:
        return 0.0
    if not warmup:
        return decay**steps
    share = 1.0
    for step in range(steps):
        share *= ema_decay_at(decay, step, warmup)
        if share < 1e-12:  # nothing left to report; spares a long product
            return 0.0
    return share


def ema_note(decay: float, steps: int, warmup: bool = False, limit: float = 0.05) -> str | None:
    """A warning when the EMA would end up mostly where training started (a short run with a
    long-horizon preset and no warm-up: 0.999 over 1,500 steps still holds 22 % of the random
    init), else None."""
    share = ema_init_share(decay, steps, warmup)
    if share <= limit:
        return None
    suggest = 0.01 ** (1 / steps)  # leaves 1 % of the init
    return (
        f"train.ema_decay={decay:g} over train.steps={steps}: the EMA weights end with "
        f"{100 * share:.0f} % of the initial weights; use ema_decay <= {suggest:.4f}, "
        "train.ema_warmup=true or train longer (a prior samples with the EMA by default: "
        "sample.use_ema)"
    )


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, module: nn.Module, decay: float, warmup: bool = False):
        self.decay, self.warmup = decay, warmup
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Average in `module`'s weights after `step` optimiser steps (0-based; the trainer
        counts them from the stage's start), so a resumed run's warm-up goes on where it was."""
        decay = ema_decay_at(self.decay, step, self.warmup)
        # A frozen parameter (DAE stage 2's encoder and codebook) is copied, not averaged: the EMA
        # model must encode exactly like the frozen encoder the decoder and prior are trained on.
        frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
        averaged: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for key, value in module.state_dict().items():
            shadow = self.shadow[key]
            if shadow.shape != value.shape or shadow.dtype != value.dtype:  # e.g. a replaced layer
                self.shadow[key] = value.detach().clone()
            elif key in frozen or not value.is_floating_point():
                shadow.copy_(value)
            else:
                averaged[0].append(shadow)
                averaged[1].append(value)
        if averaged[0]:
            # One batched call instead of one lerp per tensor: a VQGAN has ~300 tensors, and on a
            # GPU a per-tensor loop is launch-bound (the same arithmetic, shadow += w (value - shadow)).
            torch._foreach_lerp_(averaged[0], averaged[1], 1.0 - decay)
