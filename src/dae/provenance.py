"""What made a cached artefact: the autoencoder run's identity plus the config that built it.

A latent cache or a trained prior is reused only when what would make it now equals what made
it; otherwise it is rebuilt (a fresh run) or refused (a resume). Identity is by content, not by
path: a run retrained in place, or another run copied to the same path, is a different autoencoder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from dae.paths import absolute_path
from dae.run_folder import RunFolder, first_difference


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def ae_identity(ae_run: str | Path) -> dict[str, str]:
    """The autoencoder run's resolved path and the hashes of its config and weights."""
    run = RunFolder(Path(ae_run).resolve())
    weights = run.weights_path if run.weights_path.is_file() else run.checkpoint_path
    return {
        "run": str(run.path),
        "config_sha256": file_sha256(run.config_path),
        "weights": weights.name,
        "weights_sha256": file_sha256(weights) if weights.is_file() else "missing",
    }


def latents_made_from(ae_run: str | Path, cfg: Any) -> dict[str, Any]:
    """What a prior config's latent cache is made from: the autoencoder, the data, the cache."""
    from dae.config import to_dict

    return {"ae": ae_identity(ae_run), "data": to_dict(cfg.data), "cache": to_dict(cfg.cache)}


def stale_latents(path: Path, made_from: dict[str, Any]) -> str | None:
    """Why the latent cache at `path` is not what `made_from` would make (None: it is)."""
    from dae.priors.cache import read_cache_meta

    if not path.is_file():
        return "no latent cache"
    then = read_cache_meta(path).get("made_from")
    if then is None:
        return "its origin is not recorded (an older cache)"
    diff = first_difference(made_from, then)
    return f"latents made from another autoencoder or data ({diff})" if diff else None


def stale_prior_run(
    run: RunFolder, config: dict[str, Any], made_from: dict[str, Any]
) -> str | None:
    """Why the prior run in `run` was not made by `config` on `made_from` (None: it was)."""
    if not run.exists():
        return f"no {run.config_path.name}"
    return first_difference(config, run.read_config()) or stale_latents(run.latents_path, made_from)


def pin_paths(cfg: Any, ae_run: str | Path | None = None) -> None:
    """Make a config's paths (`ae_run`, `data.root`) absolute before a run stores it."""
    if ae_run is not None:
        cfg.ae_run = absolute_path(str(ae_run))
    data = getattr(cfg, "data", None)
    if getattr(data, "root", None):
        data.root = absolute_path(data.root)
