"""Reconstruction metrics (PSNR; SSIM via torchmetrics) over the autoencoder contract.

Any dae autoencoder works (dae/autoencoder/base.py): `latent(x)` is deterministic (posterior mean,
code vectors of the nearest codes, or a feature), `decode` maps it back, as metrics must.
"""

from __future__ import annotations

import torch

from dae.autoencoder.base import DecoupledAutoencoder


@torch.no_grad()
def reconstruct(
    model: DecoupledAutoencoder, x: torch.Tensor, batch_size: int = 250
) -> torch.Tensor:
    """Deterministic reconstructions `decode(latent(x))` of `x` (same shape), batch by batch."""
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(model.decode(model.latent(x[i : i + batch_size])))
    return torch.cat(outs)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB over the whole set (images in [-1, 1]: range 2)."""
    # torchmetrics' definition (one MSE over every pixel of the set), written out: importing
    # torchmetrics costs about a second in every process that imports this module (each
    # `dae train` does); only SSIM imports it.
    mse = torch.mean((pred.float().clamp(-1, 1) - target.float()) ** 2)
    return float(10 * torch.log10(data_range**2 / mse))


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> float:
    """Mean structural similarity (Gaussian window 11, sigma 1.5), images in [-1, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return float(
        structural_similarity_index_measure(
            pred.float().clamp(-1, 1), target.float(), data_range=data_range
        )
    )
