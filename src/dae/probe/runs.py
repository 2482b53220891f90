"""Loading a run for the probe, and freezing its encoder + bottleneck as DAE stage 2 does.

`load_probed_run` is the only place the probe reads a run folder; when dae gets one object owning
run folders, this function is what changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dae.autoencoder.image import ImageAutoencoder
from dae.config import ConfigError, from_dict, to_dict
from dae.priors.cache import LoadedAutoencoder, load_autoencoder
from dae.schedule import DAESchedule, ScheduleConfig

FINAL_WEIGHTS = "model.safetensors"


@dataclass
class ProbedRun:
    """A trained image autoencoder, frozen, with its typed experiment config and its identity."""

    loaded: LoadedAutoencoder
    cfg: Any  # VQGANExperimentConfig | KLExperimentConfig
    identity: dict[str, Any]

    @property
    def model(self) -> ImageAutoencoder:
        return self.loaded.model  # type: ignore[return-value]

    @property
    def key(self) -> str:
        """A folder name unique to this run's path (its result files live there)."""
        digest = hashlib.sha256(self.identity["path"].encode()).hexdigest()[:8]
        return f"{self.identity['name']}-{digest}"


def load_probed_run(path: str | Path) -> ProbedRun:
    """Load a run's final autoencoder (eval mode) and typed config, or say why it cannot be."""
    from dae.experiments import EXPERIMENTS

    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a run folder")
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path} is not a dae run: no config.yaml")
    weights = path / FINAL_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(
            f"{path}: no final weights ({FINAL_WEIGHTS}); finish training first"
        )
    loaded = load_autoencoder(path, "final")
    kind = loaded.config.get("kind")
    if not isinstance(loaded.model, ImageAutoencoder):
        raise ConfigError("kind", f"{path}: the probe needs an image autoencoder run, got {kind!r}")
    cfg = from_dict(EXPERIMENTS.get(kind).config_cls, loaded.config)
    identity = {
        "path": str(path.resolve()),
        "name": path.resolve().name,
        "kind": kind,
        "latent": "vq" if hasattr(loaded.model, "encode_to_indices") else "kl",
        "schedule": cfg.schedule.mode,
        "weak_decoder": cfg.schedule.weak_decoder if cfg.schedule.mode == "dae" else None,
        "schedule_config": to_dict(cfg.schedule),
        "train_steps": cfg.train.steps,
        "train_seed": cfg.train.seed,
        "decoder_ch": cfg.model.ch,
        "data": cfg.data.name,
        "weights_sha256": _sha256(weights)[:16],
    }
    return ProbedRun(loaded, cfg, identity)


def freeze_encoder(model: ImageAutoencoder) -> None:
    """Freeze encoder + bottleneck with the DAE schedule's own stage-2 code (requires_grad False,
    eval mode: no codebook restarts), then the run's own decoder too: the probe trains new ones."""
    DAESchedule(ScheduleConfig(mode="dae"), 2).enter(model, "stage2", fresh=False)
    model.requires_grad_(False)
    model.eval()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
