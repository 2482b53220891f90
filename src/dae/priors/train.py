"""`dae train-prior`: cache an autoencoder run's latents into the prior's run, then train on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dae.data.images import ImageDataConfig, load_in_memory
from dae.errors import CheckpointError, ConfigError
from dae.experiments import get_kind
from dae.experiments.train import train
from dae.priors.cache import CacheConfig, LatentCache, encode_dataset
from dae.provenance import latents_made_from, pin_paths, stale_latents
from dae.run import Run
from dae.run_folder import RunFolder
from dae.train.distributed import barrier, dist_info
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
    """Cache the run's latents into `out` (once), train the prior, write its weights.

    The cache is keyed by what made it (the autoencoder run's identity, the data and cache
    configs): one made otherwise is re-encoded for a fresh run and refused for a resume.
    """
    Run(ae_run).require()
    pin_paths(cfg, ae_run)  # absolute: `dae sample` then works from any working directory
    kind = get_kind(cfg.kind)
    made_from = latents_made_from(ae_run, cfg)

    def make_task(run: RunFolder):
        if dist_info().is_main and (stale := stale_latents(run.latents_path, made_from)):
            if resume:
                raise ConfigError(
                    "config",
                    f"differs from the run being resumed in {run.path}: {stale}; use --overwrite",
                )
            if run.latents_path.is_file():
                print(
                    f"{run.latents_path}: not made by this config and autoencoder ({stale}); "
                    "re-encoding"
                )
            cache = build_cache(cfg.ae_run, cfg.data, cfg.cache, cfg.train.device)
            cache.meta["made_from"] = made_from
            cache.save(run.latents_path)
        barrier()
        cache = LatentCache.load(run.latents_path)
        shape = cache.meta["latent_shape"]
        print(f"latents: {len(cache)} x {shape} ({cache.kind}) from {cache.meta['ae_source']}")
        torch.manual_seed(cfg.train.seed)
        return kind.task(cfg, cache, kind.model(cfg, cache.meta))

    return train(cfg, out, resume, overwrite, make_task=make_task, inputs=[ae_run])
