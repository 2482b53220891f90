"""`dae train-prior`: cache an autoencoder run's latents into the prior's run, then train on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dae.data.images import ImageDataConfig, load_in_memory
from dae.errors import CheckpointError
from dae.experiments import get_kind
from dae.experiments.train import train
from dae.priors.cache import CacheConfig, LatentCache, encode_dataset
from dae.run import Run
from dae.train.distributed import barrier, dist_info
from dae.train.run_folder import RunFolder
from dae.train.trainer import Trainer


def build_cache(
    ae_run: str | Path, data: ImageDataConfig, cfg: CacheConfig, device: str = "cpu"
) -> LatentCache:
    """Encode the data set with the run's frozen encoder, noting which weights encoded it.

    A checkpoint is accepted only in DAE stage 2, when the encoder is frozen: its codes are final.
    """
    ae = Run(ae_run).autoencoder(cfg.ae_weights)
    if ae.stage is not None and ae.stage != "stage2":
        raise CheckpointError(
            f"{Run(ae_run).checkpoint_path}: the encoder is still training (stage {ae.stage!r}); "
            "a prior can start from a checkpoint only in DAE stage 2, when the encoder is frozen. "
            "Wait for the final weights or pass cache.ae_weights=final"
        )
    dataset = load_in_memory(data)
    cache = encode_dataset(
        ae.model, ae.source, dataset.images, dataset.labels, dataset.classes, cfg, device
    )
    cache.meta["ae_run"] = str(ae_run)
    return cache


def train_prior(
    cfg: Any, ae_run: str | Path, out: str | Path, resume: bool = False, overwrite: bool = False
) -> Trainer:
    """Cache the run's latents into `out` (once), train the prior, write its weights."""
    Run(ae_run).require()
    cfg.ae_run = str(ae_run)
    kind = get_kind(cfg.kind)

    def make_task(run: RunFolder):
        if dist_info().is_main and not run.latents_path.is_file():
            build_cache(ae_run, cfg.data, cfg.cache, cfg.train.device).save(run.latents_path)
        barrier()
        cache = LatentCache.load(run.latents_path)
        shape = cache.meta["latent_shape"]
        print(f"latents: {len(cache)} x {shape} ({cache.kind}) from {cache.meta['ae_source']}")
        torch.manual_seed(cfg.train.seed)
        return kind.task(cfg, cache, kind.model(cfg, cache.meta))

    return train(cfg, out, resume, overwrite, make_task=make_task)
