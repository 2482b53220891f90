"""A run as the probe sees it: `Run(path).autoencoder("final")`, frozen as DAE stage 2 freezes it,
with an identity that names the run in probe.json and keys its cached results."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dae.autoencoder.image import ImageAutoencoder
from dae.config import to_dict
from dae.errors import ConfigError, MissingFileError, RunFolderError
from dae.metrics.inception import sha256_file
from dae.run import Loaded, Run
from dae.schedule import DAESchedule, ScheduleConfig


@dataclass
class ProbedRun:
    """A trained image autoencoder (final weights, eval mode), its typed config and its identity."""

    loaded: Loaded
    identity: dict[str, Any]

    @property
    def model(self) -> ImageAutoencoder:
        return self.loaded.model  # type: ignore[return-value]

    @property
    def cfg(self) -> Any:  # VQGANExperimentConfig | KLExperimentConfig
        return self.loaded.cfg

    @property
    def key(self) -> str:
        return run_key(self.identity)


def run_key(identity: dict[str, Any]) -> str:
    """A folder name unique to a probed run's path (its result files live there), from the
    identity probe.json stores, so that a summary's runs can be named again."""
    digest = hashlib.sha256(identity["path"].encode()).hexdigest()[:8]
    return f"{identity['name']}-{digest}"


def load_probed_run(path: str | Path) -> ProbedRun:
    """Load a run's final autoencoder through `Run`, or say in one line why it cannot be."""
    run = Run(path)
    if not run.path.is_dir():
        raise RunFolderError(f"{run.path} is not a run folder")
    run.require()
    if not run.weights_path.is_file():
        raise MissingFileError(
            f"{run.path}: no final weights ({run.weights_path.name}); finish training first"
        )
    loaded = run.autoencoder("final")
    cfg = loaded.cfg
    if not isinstance(loaded.model, ImageAutoencoder):
        raise ConfigError(
            "kind", f"{run.path}: the probe needs an image autoencoder run, got {cfg.kind!r}"
        )
    identity = {
        "path": str(run.path.resolve()),
        "name": run.path.resolve().name,
        "kind": cfg.kind,
        "latent": "vq" if loaded.model.kind == "vq" else "kl",
        "schedule": cfg.schedule.mode,
        "weak_decoder": cfg.schedule.weak_decoder if cfg.schedule.mode == "dae" else None,
        "schedule_config": to_dict(cfg.schedule),
        "train_steps": cfg.train.steps,
        "train_seed": cfg.train.seed,
        "decoder_ch": cfg.model.ch,
        "data": cfg.data.name,
        "weights_sha256": sha256_file(run.weights_path)[:16],
    }
    return ProbedRun(loaded, identity)


def freeze_encoder(model: ImageAutoencoder) -> None:
    """Freeze encoder + bottleneck with the DAE schedule's own stage-2 code (requires_grad False,
    eval mode: no codebook restarts), then the run's own decoder too: the probe trains new ones."""
    DAESchedule(ScheduleConfig(mode="dae"), 2).enter(model, "stage2", fresh=False)
    model.requires_grad_(False)
    model.eval()
