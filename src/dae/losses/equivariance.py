"""EQ-VAE's equivariance regulariser (Kouzelis et al. 2025): decoding a transformed latent should
give the transformed image, |D(t(z)) - t(x)|, for t = x0.5 scaling and a 90-degree rotation.

The same transformations define the equivariance *errors* of `dae.metrics.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Map = Callable[[torch.Tensor], torch.Tensor]

# EQ-VAE's two transformations, applied alike to images and latents (B, C, H, W).
TRANSFORMS: dict[str, Map] = {
    "scale": lambda t: F.avg_pool2d(t, 2),  # x0.5 by 2x2 area averaging
    "rot90": lambda t: torch.rot90(t, 1, dims=(-2, -1)),
}


def equivariance_loss(decode: Map, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over `TRANSFORMS` of the L1 distance |decode(t(z)) - t(x)| (per pixel); a latent too
    small or odd to halve is only rotated."""
    terms = [
        (decode(t(z)) - t(x)).abs().mean()
        for name, t in TRANSFORMS.items()
        if name != "scale" or not (z.shape[-2] % 2 or z.shape[-1] % 2)
    ]
    return torch.stack(terms).mean()
