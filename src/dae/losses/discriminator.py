"""The PatchGAN discriminator of pix2pix / taming (`NLayerDiscriminator`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dae.config import check
from dae.losses.gan import GanLoss


@dataclass
class DiscriminatorConfig:
    n_layers: int = field(default=3, metadata={"help": "strided conv layers (3: 70x70 patches)"})
    ndf: int = field(default=64, metadata={"help": "filters in the first layer"})
    loss: GanLoss = field(default="hinge", metadata={"help": "hinge or vanilla"})
    weight: float = field(default=0.8, metadata={"help": "disc_weight: scales the adaptive weight"})
    start: int = field(
        default=0, metadata={"help": "disc_start: stage step at which the GAN terms switch on"}
    )
    factor: float = field(default=1.0, metadata={"help": "disc_factor once active"})
    shared_batch: bool = field(
        default=False,
        metadata={
            "help": "real and reconstructed images in one discriminator batch, so BatchNorm's "
            "statistics cover both (taming passes them separately, which normalises away every "
            "difference of the two batches' channel means)"
        },
    )

    def __post_init__(self) -> None:
        check(self.n_layers >= 1, "n_layers", f"must be >= 1, got {self.n_layers}")
        check(self.ndf >= 1, "ndf", f"must be >= 1, got {self.ndf}")
        check(self.weight >= 0, "weight", f"must be >= 0, got {self.weight}")
        check(self.start >= 0, "start", f"must be >= 0, got {self.start}")


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> (B, 1, h, w) real/fake logits per overlapping patch."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last block keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """pix2pix init: conv N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
