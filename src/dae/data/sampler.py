"""Step-indexed batching: the batch of step t is a pure function of (seed, t), so resume is exact."""

from __future__ import annotations

import torch

from dae.config import ConfigError


class EpochSampler:
    """Shuffles `n` items once per epoch; `indices(step)` gives that step's batch for this rank.

    No iterator state: a resumed run asks for step t and gets the batch an uninterrupted run saw.
    Under data parallelism each rank takes its own slice of every global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        global_batch = batch_size * world_size
        if n < global_batch:
            raise ConfigError(
                "train.batch_size",
                f"{batch_size} x {world_size} process(es) is more than the dataset's {n} items",
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = n // global_batch
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        start = (within * self.world_size + self.rank) * self.batch_size
        return self._perm[start : start + self.batch_size]
