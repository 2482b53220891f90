"""Pixel reconstruction term shared by VQGAN and KL-AE: L1, plus LPIPS when weights are given."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dae.config import check
from dae.losses.lpips import LPIPS


@dataclass
class ReconstructionConfig:
    perceptual_weight: float = field(
        default=0.0, metadata={"help": "LPIPS weight; needs lpips_vgg and lpips_lin weight files"}
    )
    lpips_vgg: str | None = field(
        default=None, metadata={"help": "VGG-16 features state dict (.pth / .safetensors)"}
    )
    lpips_lin: str | None = field(default=None, metadata={"help": "LPIPS linear heads (vgg.pth)"})
    equivariance_weight: float = field(
        default=0.0,
        metadata={
            "help": "EQ-VAE term |D(t z) - t x| (x0.5 scale, 90-degree rotation), in every stage "
            "that trains the encoder (0: off)"
        },
    )

    def __post_init__(self) -> None:
        check(self.perceptual_weight >= 0, "perceptual_weight", "must be >= 0")
        check(self.equivariance_weight >= 0, "equivariance_weight", "must be >= 0")
        check(
            self.perceptual_weight == 0 or (self.lpips_vgg and self.lpips_lin),
            "perceptual_weight",
            "> 0 needs both lpips_vgg and lpips_lin weight files (dae ships and downloads none)",
        )


class Reconstruction(nn.Module):
    """`(x, x_hat) -> (B, C, H, W)` per-pixel loss |x - x_hat| + w * LPIPS(x, x_hat)."""

    def __init__(self, cfg: ReconstructionConfig):
        super().__init__()
        self.weight = cfg.perceptual_weight
        self.lpips = LPIPS.from_files(cfg.lpips_vgg, cfg.lpips_lin) if self.weight > 0 else None

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        rec = (x - x_hat).abs()
        if self.lpips is not None:
            rec = rec + self.weight * self.lpips(x.contiguous(), x_hat.contiguous())
        return rec
