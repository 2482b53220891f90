"""Reconstruction metrics (PSNR, SSIM via torchmetrics) and the small model protocol they rely on.

Any dae autoencoder works: `encode(x)` may return a tensor, a `(mean, logvar)` tuple (toy VAE) or
a distribution with `.mean` (KL-AE); VQ models also have `encode_to_indices` / `decode_indices`.
Latents are the posterior mean (KL) or the quantised codes (VQ): deterministic, as metrics must be.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)


def is_vq(model: nn.Module) -> bool:
    """Does the model quantise to codes (`encode_to_indices` + `quantize.lookup`)?"""
    return hasattr(model, "encode_to_indices") and hasattr(
        getattr(model, "quantize", None), "lookup"
    )


@torch.no_grad()
def latent_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The deterministic latent of `x`: posterior mean, or the quantised code vectors for VQ."""
    if is_vq(model):
        idx = model.encode_to_indices(x)  # (B, h, w)
        return model.quantize.lookup(idx)  # (B, h, w) -> (B, D, h, w)
    return _mean(model.encode(x))


def _mean(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list):
        return out[0]
    if hasattr(out, "mean") and isinstance(out.mean, torch.Tensor):
        return out.mean
    if hasattr(out, "latent_dist"):
        return out.latent_dist.mean
    raise TypeError(f"cannot take a latent from encode() output of type {type(out).__name__}")


def decode_to_data(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """`model.decode(z)`, unwrapped from tuples / diffusers outputs."""
    out = model.decode(z)
    return (
        out if isinstance(out, torch.Tensor) else (out.sample if hasattr(out, "sample") else out[0])
    )


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Deterministic reconstructions of `x` (float, same shape), batch by batch."""
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(decode_to_data(model, latent_of(model, x[i : i + batch_size])))
    return torch.cat(outs)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB over the whole set (images in [-1, 1]: range 2)."""
    return float(
        peak_signal_noise_ratio(pred.float().clamp(-1, 1), target.float(), data_range=data_range)
    )


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> float:
    """Mean structural similarity (Gaussian window 11, sigma 1.5), images in [-1, 1]."""
    return float(
        structural_similarity_index_measure(
            pred.float().clamp(-1, 1), target.float(), data_range=data_range
        )
    )
