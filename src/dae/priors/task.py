"""A prior (GPT or DiT) as a task of the one `Trainer`: batches from a latent cache, its own loss.

Everything random in a step (the batch, the KL latent draw, diffusion's t and noise, label dropout)
comes from a generator seeded by `(seed, step, rank)`, and the trainer checkpoints the global RNG
(dropout), so a resumed run equals an uninterrupted one. Precision, DDP, grad accumulation, the
NaN policy, EMA and checkpoints are the trainer's, as for autoencoders.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dae.data.sampler import EpochSampler
from dae.priors.cache import LatentCache
from dae.schedule import StagePlan
from dae.train.distributed import dist_info, wrap_ddp
from dae.train.task import StepContext, Task


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of one training step: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1 + rank * 1_000_000_007)


class PriorTask(Task):
    """Trains `prior` (a `GPTPrior` / `DiTPrior`) on `cache`; its optimiser is named "prior"."""

    def __init__(self, cfg: Any, cache: LatentCache, prior: nn.Module):
        self.cfg, self.cache, self.model = cfg, cache, prior
        self.device = torch.device(cfg.train.device)
        self.rank = dist_info().rank
        world = dist_info().world_size
        self.sampler = EpochSampler(
            len(cache), cfg.train.batch_size, cfg.train.batch_seed, self.rank, world
        )
        self.prior_train: nn.Module = prior  # DDP-wrapped under torchrun

    def modules(self) -> dict[str, nn.Module]:
        return {"prior": self.model}

    def optimizer_params(self, plan: StagePlan) -> dict[str, list[dict]]:
        # no weight decay on biases, norms and embeddings
        groups = self.model.param_groups(self.cfg.optim.weight_decay)
        return {"prior": [g for g in groups if g["params"]]}

    def enter_stage(self, plan: StagePlan) -> None:
        self.prior_train = wrap_ddp(self.model)

    def ddp_modules(self) -> list[nn.Module]:
        return [self.prior_train]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        gen = step_generator(self.cfg.train.seed, step, self.rank)
        index = self.sampler.indices(step)
        latents, labels = self.cache.batch(index, gen, self.cfg.cache.sample_posterior)
        return latents.to(self.device), labels.to(self.device), gen

    def loss(self, name: str, batch: tuple, ctx: StepContext):
        return self.prior_train(*batch)  # the prior's forward is its loss
