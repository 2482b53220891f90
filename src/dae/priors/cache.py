"""Latent caching: encode a dataset once with a frozen autoencoder; the prior trains from the file.

VQ autoencoders give code grids `(N, h, w)`; KL autoencoders give the posterior's mean and
log-variance `(N, C, h, w)`, and a fresh latent is drawn from them every step (as LDM does), then
multiplied by the autoencoder's `scaling_factor` (measured on the cache, 1/std, if it stores none).

DAE freezes the encoder after stage 1, so a DAE run's codes are final once stage 2 starts: a prior
can be cached from the stage-2 checkpoint and train while the decoder is still training
(`ae_weights: auto` does this when the run has no final weights yet; see `dae.priors.train`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dae.autoencoder.base import DecoupledAutoencoder
from dae.config import check
from dae.data.transforms import to_float
from dae.errors import CheckpointError, ConfigError, MissingFileError
from dae.files import atomic_write

AEWeights = Literal["auto", "final", "checkpoint"]


@dataclass
class CacheConfig:
    ae_weights: AEWeights = field(
        default="auto",
        metadata={
            "help": "final (model.safetensors), checkpoint (last.pt, DAE stage 2 only) or "
            "auto (final if present, else the stage-2 checkpoint)"
        },
    )
    hflip: bool = field(default=False, metadata={"help": "also cache horizontally flipped images"})
    max_images: int = field(default=0, metadata={"help": "encode only the first N images; 0: all"})
    batch_size: int = field(default=256, metadata={"help": "images per encoder batch"})
    sample_posterior: bool = field(
        default=True, metadata={"help": "KL: draw z ~ N(mean, var) each step; false: use the mean"}
    )
    center: bool = field(
        default=False,
        metadata={
            "help": "KL: also subtract the per-channel mean of the scaled latents (stored in the "
            "cache as `shift`, added back before decoding)"
        },
    )

    def __post_init__(self) -> None:
        check(self.max_images >= 0, "max_images", f"must be >= 0, got {self.max_images}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class LatentCache:
    """Cached latents of one dataset under one frozen encoder, plus what a prior needs to know."""

    tensors: dict[str, torch.Tensor]  # vq: codes (N, h, w); kl: mean, logvar (N, C, h, w); labels
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    def __len__(self) -> int:
        return len(self.tensors["labels"])

    def batch(
        self, index: torch.Tensor, generator: torch.Generator | None, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents, labels) at `index`: codes `(B, h, w)`, or scaled KL latents `(B, C, h, w)`."""
        labels = self.tensors["labels"][index]
        if self.kind == "vq":
            return self.tensors["codes"][index].long(), labels
        mean = self.tensors["mean"][index]
        if sample:
            std = (0.5 * self.tensors["logvar"][index]).exp()
            mean = mean + std * torch.randn(mean.shape, generator=generator)
        return to_prior_space(mean, self.meta), labels

    def save(self, path: str | Path) -> None:
        tensors = {k: v.contiguous() for k, v in self.tensors.items()}
        meta = {"dae_latents": json.dumps(self.meta)}
        atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> LatentCache:
        meta = read_cache_meta(path)
        try:
            tensors = load_file(str(path))
        except SafetensorError as err:
            raise CheckpointError(f"{path}: unreadable or corrupt latent cache ({err})") from None
        codes, n = tensors.get("codes"), meta.get("codebook_size")
        if codes is not None and n and len(codes) and not (0 <= codes.min() <= codes.max() < n):
            raise CheckpointError(
                f"{path}: codes outside [0, {n}) (min {int(codes.min())}, max "
                f"{int(codes.max())}); the cache is corrupt, re-encode it with --overwrite"
            )
        return cls(tensors, meta)


def read_cache_meta(path: str | Path) -> dict[str, Any]:
    """A latent cache's metadata without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"latent cache not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("dae_latents")
    except SafetensorError as err:
        raise CheckpointError(f"{path}: unreadable or corrupt latent cache ({err})") from None
    if raw is None:
        raise CheckpointError(f"{path}: not a dae latent cache (no dae_latents metadata)")
    return json.loads(raw)


@torch.no_grad()
def encode_dataset(
    model: DecoupledAutoencoder,
    source: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    cfg: CacheConfig,
    device: torch.device | str = "cpu",
) -> LatentCache:
    """Encode uint8 images `(N, C, H, W)` with the frozen encoder of `model` into a `LatentCache`
    (`source` notes which weights: "final", "checkpoint@STEP/stage2", ...)."""
    if model.kind == "deterministic":
        raise ConfigError("kind", f"{type(model).__name__} has no VQ or Gaussian latent to cache")
    model = model.to(device)
    kind = "vq" if model.kind == "vq" else "kl"
    if cfg.max_images:
        images, labels = images[: cfg.max_images], labels[: cfg.max_images]
    if cfg.hflip:
        images, labels = torch.cat([images, images.flip(-1)]), torch.cat([labels, labels])
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(images), cfg.batch_size):
        x = to_float(images[start : start + cfg.batch_size]).to(device)
        if kind == "vq":
            out = {"codes": model.encode_to_indices(x).to(torch.int32)}  # (B, h, w)
        else:
            mean, logvar = model.posterior(x)
            out = {"mean": mean.float(), "logvar": logvar.float()}
        for key, value in out.items():
            parts.setdefault(key, []).append(value.cpu())
    tensors = {k: torch.cat(v) for k, v in parts.items()}
    tensors["labels"] = labels.long()
    first = tensors["codes" if kind == "vq" else "mean"]
    meta: dict[str, Any] = {
        "kind": kind,
        "latent_shape": list(first.shape[1:]),
        "image_shape": list(images.shape[1:]),
        "classes": list(classes),
        "ae_source": source,
    }
    if kind == "vq":
        meta["codebook_size"] = len(model.codebook)
    else:
        scale = model.scaling_factor
        meta["scaling_factor_source"] = "autoencoder" if scale else "measured"
        if not scale:  # LDM's recipe: unit variance of the (sampled) latents over the data
            gen = torch.Generator().manual_seed(0)
            z = tensors["mean"] + (0.5 * tensors["logvar"]).exp() * torch.randn(
                tensors["mean"].shape, generator=gen
            )
            scale = 1.0 / z.flatten().std().item()
        meta["scaling_factor"] = float(scale)
        if cfg.center:
            # `scaling_factor` (1 / global std) leaves each channel's mean where the encoder put
            # it, here up to 1 std from 0. A small DiT learns that offset slowly, and at large t
            # its eps bias is amplified by sqrt(1/abar - 1) into a colour cast of every sample
            # (docs/results.md), so the prior can model centred latents instead.
            channel_mean = tensors["mean"].transpose(0, 1).flatten(1).mean(1)  # (C,)
            meta["shift"] = (channel_mean * scale).tolist()
    return LatentCache(tensors, meta)


def _shift(meta: dict[str, Any], like: torch.Tensor) -> torch.Tensor | float:
    """The cache's per-channel shift `(1, C, 1, 1)`, or 0 for an uncentred cache."""
    if "shift" not in meta:
        return 0.0
    return torch.tensor(meta["shift"], dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def to_prior_space(z: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Autoencoder latents `(B, C, h, w)` -> what the prior models: scaled, centred if asked."""
    return z * meta["scaling_factor"] - _shift(meta, z)


def from_prior_space(z: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """The inverse of `to_prior_space`: prior samples -> latents the decoder takes."""
    return (z + _shift(meta, z)) / meta["scaling_factor"]
