"""From a trained prior run to images: sample latents, decode with the autoencoder, write files.

`samples.npz` holds `images` (uint8 `(N, C, H, W)`) and `labels` (int64 `(N,)`), the format
`dae evaluate` reads; `grid.png` shows the first samples.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from dae.config import ConfigError, apply_overrides, from_dict
from dae.data.transforms import to_uint8
from dae.priors.cache import (
    LoadedAutoencoder,
    from_prior_space,
    latent_kind,
    load_autoencoder,
    read_cache_meta,
)
from dae.priors.models import PRIORS
from dae.provenance import file_sha256
from dae.train.checkpoint import CheckpointError, atomic_write, load_state
from dae.train.export import load_weights


@dataclass
class PriorRun:
    """A trained prior, its validated config and its latent cache's metadata."""

    prior: nn.Module
    cfg: Any
    meta: dict[str, Any]
    weights: str


def load_prior_run(
    run_dir: str | Path, overrides: list[str] = (), use_ema: bool | None = None
) -> PriorRun:
    """Rebuild the prior of a `dae train-prior` run with its final (EMA if kept) weights."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a prior run: no config.yaml")
    data = apply_overrides(yaml.safe_load(config_path.read_text()), list(overrides))
    kind = PRIORS.get(data.get("kind", ""))
    cfg = from_dict(kind.config_cls, data)
    meta = read_cache_meta(run_dir / "latents.safetensors")
    prior = kind.build(cfg, meta)
    want_ema = cfg.sample.use_ema if use_ema is None else use_ema
    path = run_dir / "prior_ema.safetensors"
    if not (want_ema and path.is_file()):
        path = run_dir / "prior.safetensors"
    state, _ = load_weights(path)
    load_state(prior, state, f"prior in {path}")
    return PriorRun(prior.eval(), cfg, meta, path.name)


def decode_latents(
    ae: LoadedAutoencoder, latents: torch.Tensor, meta: dict[str, Any]
) -> torch.Tensor:
    """Codes `(B, h, w)` or scaled KL latents `(B, C, h, w)` -> images in [-1, 1] `(B, C, H, W)`."""
    model = ae.model
    if latent_kind(model) != meta["kind"]:
        raise ValueError(f"the prior was trained on {meta['kind']} latents, the autoencoder is not")
    if meta["kind"] == "vq":
        return model.decode_indices(latents.long())
    return model.decode(from_prior_space(latents, meta))


@torch.no_grad()
def generate_samples(
    run: PriorRun,
    ae: LoadedAutoencoder,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` samples as uint8 `(n, C, H, W)` and their labels: balanced over the classes for a
    class-conditional prior, -1 ("no label") for an unconditional one."""
    if labels is None:
        n_classes = run.prior.n_classes
        labels = torch.arange(n) % n_classes if n_classes else torch.full((n,), -1)
    gen = torch.Generator(device=device).manual_seed(seed)
    prior = run.prior.to(device)
    ae.model.to(device)
    images = []
    for start in range(0, n, run.cfg.sample.batch_size):
        y = labels[start : start + run.cfg.sample.batch_size]
        latents = prior.sample(y, gen, device)
        images.append(to_uint8(decode_latents(ae, latents, run.meta).clamp(-1, 1)).cpu())
    return torch.cat(images), labels.long()


def image_grid(images: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """uint8 `(N, C, H, W)` -> one `(rows*H, nrow*W, C)` uint8 mosaic (gray images: C = 1)."""
    n, c, h, w = images.shape
    rows = -(-n // nrow)
    grid = torch.zeros(c, rows * h, nrow * w, dtype=torch.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        grid[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = img
    return grid.permute(1, 2, 0).numpy()


def write_samples(out: str | Path, images: torch.Tensor, labels: torch.Tensor, info: dict) -> None:
    """`out/samples.npz` (images, labels), `out/grid.png` (first 64) and `out/samples.yaml`."""
    import matplotlib.image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def npz(tmp: Path) -> None:
        buf = io.BytesIO()  # np.savez appends ".npz" to names without it
        np.savez(buf, images=images.numpy(), labels=labels.numpy())
        tmp.write_bytes(buf.getvalue())

    atomic_write(out / "samples.npz", npz)
    grid = image_grid(images[:64], nrow=min(8, len(images)))
    grid = grid[..., 0] if grid.shape[-1] == 1 else grid
    atomic_write(
        out / "grid.png",
        lambda tmp: matplotlib.image.imsave(
            tmp, grid, cmap="gray" if grid.ndim == 2 else None, format="png"
        ),
    )
    atomic_write(
        out / "samples.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(info, sort_keys=False))
    )


def read_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images `(N, C, H, W)`, labels) from a `samples.npz`."""
    with np.load(Path(path), allow_pickle=False) as z:
        return torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])


def score_samples(
    samples: str | Path,
    reference: torch.Tensor,
    features: str = "classifier:cifar10",
    tag: str = "reference",
) -> dict[str, float]:
    """Generation metrics (FD, IS, KD, precision/recall) of `samples.npz` against uint8 `reference`.

    A thin hook over the metrics harness (`dae.metrics`): the feature extractors and the metric
    math live there; this reads the samples file and hands both image sets over.
    """
    try:
        from dae.metrics.features import build_features, reference_features
        from dae.metrics.fid import distribution_metrics
    except ImportError as err:
        raise ImportError(
            f"generation metrics need the metrics harness (dae.metrics.features, dae.metrics.fid): {err}"
        ) from None
    images, _ = read_samples(samples)
    extractor = build_features(features)
    real = reference_features(extractor, reference, tag)
    return distribution_metrics(real, extractor.extract(images), extractor.names)


def sample_run(
    run_dir: str | Path,
    n: int,
    out: str | Path,
    seed: int = 0,
    device: str | None = None,
    overrides: list[str] = (),
    ae_weights: str = "auto",
) -> dict[str, Any]:
    """`dae sample`: load the prior and its autoencoder, sample `n` images, write them to `out`."""
    run = load_prior_run(run_dir, overrides)
    device = device or run.cfg.train.device
    if not (Path(run.cfg.ae_run) / "config.yaml").is_file():
        raise ConfigError(
            "ae_run",
            f"{run.cfg.ae_run} (in {Path(run_dir) / 'config.yaml'}) is not a dae run, seen from "
            f"{Path.cwd()}; runs made now store it absolute",
        )
    made_by = run.meta.get("made_from", {}).get("ae", {})
    if made_by and made_by["config_sha256"] != file_sha256(Path(run.cfg.ae_run) / "config.yaml"):
        raise CheckpointError(
            f"{run.cfg.ae_run}: this autoencoder run was replaced after the prior in {run_dir} "
            "was trained (its config.yaml changed); its decoder would not match the prior's "
            "latents. Train the prior again (train-prior --overwrite)"
        )
    ae = load_autoencoder(run.cfg.ae_run, ae_weights)
    images, labels = generate_samples(run, ae, n, seed, device)
    info = {
        "prior_run": str(run_dir),
        "prior_weights": run.weights,
        "ae_run": run.cfg.ae_run,
        "ae_weights": ae.source,
        "latents_from": run.meta["ae_source"],
        "n": n,
        "seed": seed,
        "sample": {k: v for k, v in vars(run.cfg.sample).items()},
    }
    write_samples(out, images, labels, info)
    return info
